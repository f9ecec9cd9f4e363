"""Build tiny, real Hugging Face model directories for tests (no download).

A byte-level BPE tokenizer is trained with the `tokenizers` library on a few hundred lines of
JavaScript, wrapped as a transformers fast tokenizer, and paired with a randomly initialised
GPT-2 saved as safetensors. The result is a few hundred KB and loads like any model dir.
"""

from __future__ import annotations

from pathlib import Path

JS_SAMPLES = [
    "function add(a, b) {\n  return a + b;\n}\n",
    "const items = [1, 2, 3];\nfor (let i = 0; i < items.length; i++) {\n  console.log(items[i]);\n}\n",
    "export default class Queue {\n  constructor() {\n    this.items = [];\n  }\n\n  push(item) {\n    this.items.push(item);\n  }\n}\n",
    "const fs = require('fs');\nmodule.exports = function read(path) {\n  return fs.readFileSync(path, 'utf8');\n};\n",
    "async function fetchJson(url) {\n  const res = await fetch(url);\n  if (!res.ok) {\n    throw new Error(`HTTP ${res.status}`);\n  }\n  return res.json();\n}\n",
    "// compute the sum of an array\nconst sum = (xs) => xs.reduce((acc, x) => acc + x, 0);\n",
    "if (value === undefined || value === null) {\n  return defaultValue;\n}\n",
    "while (node) {\n  node = node.next;\n}\n",
    "import React from 'react';\nexport function App() {\n  return <div className=\"app\">Hello</div>;\n}\n",
]

SPECIAL_TOKENS = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]


def train_byte_level_bpe(texts: list[str], vocab_size: int, specials: list[str]):  # -> tokenizers.Tokenizer
    """A real byte-level BPE (the `tokenizers` library) trained on `texts`, specials first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_tokenizer(out_dir: Path, *, vocab_size: int = 600, fim: bool = True):  # -> PreTrainedTokenizerFast
    from transformers import PreTrainedTokenizerFast

    specials = SPECIAL_TOKENS if fim else SPECIAL_TOKENS[:1]
    tok = train_byte_level_bpe(JS_SAMPLES * 20, vocab_size, specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
        model_max_length=512,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_model(
    out_dir: Path,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 512,
    fim: bool = True,
    seed: int = 0,
) -> Path:
    """Write a random tiny GPT-2 + tokenizer into `out_dir` and return it."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = build_tokenizer(out_dir, fim=fim)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
