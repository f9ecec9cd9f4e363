"""Helpers for the training-runner tests: a tiny RoBERTa for MLM, repetitive npm packages, small-run flags,
a tiny GPT-2 recipe on a packed token file, CLI error lines.

Imported by the runner tests (plain module, not a conftest: the shared data fixtures live in
tests/training/conftest.py, owned by the data tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Keep every run tiny: small blocks and batches on the 2 shared CPU cores.
SMALL = [
    "--set", "data.block_size=64",
    "--set", "train.per_device_train_batch_size=4",
    "--set", "train.per_device_eval_batch_size=4",
    "--set", "train.gradient_accumulation_steps=1",
    "--set", "train.logging_steps=1",
    "--set", "train.progress_bar=false",
]

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

# A 2-layer GPT-2 from scratch on blocks of 32 FIM tokens; the [train] table is the caller's.
TINY_GPT2_RECIPE = """
name = "{name}"
[model]
from_scratch = true
arch = "gpt2"
n_layer = 2
n_embd = 32
n_head = 2
n_positions = 64
[tokenizer]
name_or_path = "{tok}"
[data]
block_size = 32
eval_fraction = 0.2
fim_rate = 0.5
[train]
"""


def pack_tiny_gpt2_run(packages: Path, root: Path, name: str, train: str) -> tuple[Path, Path]:
    """(recipe path, token file stem) under `root`: the npm `packages` packed with a tiny FIM
    tokenizer (saved in root/tok) and a tiny GPT-2 recipe `name` whose [train] table is `train`."""
    from tiny_model import build_tokenizer

    from training.data.config import DataConfig
    from training.data.tokens import pack_corpus

    tokenizer = build_tokenizer(root / "tok")
    pack_corpus(DataConfig(source="npm", dir=str(packages)), tokenizer, root / "corpus")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_GPT2_RECIPE.format(name=name, tok=root / "tok") + train, encoding="utf-8")
    return recipe, root / "corpus"


def build_tiny_roberta(out_dir: Path, texts: list[str], *, vocab_size: int = 500) -> Path:
    """A real byte-level BPE tokenizer with RoBERTa's special tokens + a random 2-layer RobertaForMaskedLM."""
    import torch
    from tiny_model import train_byte_level_bpe
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForMaskedLM

    tok = train_byte_level_bpe(texts, vocab_size, ROBERTA_SPECIALS)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=128,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    RobertaForMaskedLM(config).save_pretrained(out_dir, safe_serialization=True)
    return out_dir


REPETITIVE_JS = (
    "function add(a, b) {\n  return a + b;\n}\n"
    "for (let i = 0; i < items.length; i++) {\n  console.log(items[i]);\n}\n"
)


def write_repetitive_packages(root: Path, n_packages: int = 4, repeats: int = 12) -> Path:
    """MIT npm packages whose files repeat the same few lines: a model must learn them quickly."""
    for i in range(n_packages):
        pkg = root / f"rep{i}"
        (pkg / "lib").mkdir(parents=True, exist_ok=True)
        (pkg / "package.json").write_text(json.dumps({"name": f"rep{i}", "version": "1.0.0", "license": "MIT"}))
        for j in range(3):
            # A per-file comment keeps files distinct for dedup; the body is the repetitive part.
            body = f"// rep{i} file {j} {'x' * (i * 3 + j)}\n" + REPETITIVE_JS * repeats
            (pkg / "lib" / f"f{j}.js").write_text(body)
    return root


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def train_losses(out: Path) -> dict[int, float]:
    """step → logged training loss, from OUT/log_history.json."""
    return {int(h["step"]): float(h["loss"]) for h in read_json(out / "log_history.json") if "loss" in h}


def write_github_parquet(root: Path, n_repos: int = 16) -> Path:
    """A github-code-schema parquet shard with enough permissive JavaScript for train + eval blocks of 512."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from conftest import js_source

    rows = [
        {"content": js_source(3000 + i, n_blocks=12), "repo_name": f"org{i}/repo{i}", "path": f"src/m{i}.js",
         "copies": "1", "license": ("mit", "isc", "apache-2.0")[i % 3]}
        for i in range(n_repos)
    ]
    rows.append({"content": js_source(3999), "repo_name": "gpl/x", "path": "src/x.js", "copies": "1", "license": "gpl-3.0"})
    for r in rows:
        r["size"] = len(r["content"])
    root.mkdir(parents=True, exist_ok=True)
    cols = ("content", "repo_name", "path", "copies", "size", "license")
    pq.write_table(pa.table({c: [r[c] for r in rows] for c in cols}), root / "train-00000-of-00001.parquet")
    return root


def one_error_line(main: Any, capfd: Any, args: list[str]) -> str:
    """Run a CLI `main(args)` that must fail with exit 2 and exactly one `error: ...` line on stderr."""
    assert main(args) == 2
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert captured.out == ""
    return lines[0]


def assert_error_lines(main: Any, capfd: Any, cases: list[tuple[list[str], tuple[str, ...]]]) -> None:
    """Each (args, needles): `main(args)` fails with one error line (`one_error_line`) holding every needle."""
    for args, needles in cases:
        line = one_error_line(main, capfd, args)
        assert all(n in line for n in needles), (args, line)
