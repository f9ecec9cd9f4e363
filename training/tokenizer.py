"""Train a byte-level BPE tokenizer (the `tokenizers` library) with FIM special tokens.

    train_tokenizer(texts, vocab_size, out_dir, min_frequency=2) -> PreTrainedTokenizerFast

Special tokens: `<|endoftext|>` (eos, bos, unk and pad: byte-level BPE never needs unk, and
packed training never pads), `<fim_prefix>`, `<fim_middle>`, `<fim_suffix>`, `<fim_pad>`.
Saved as a transformers fast tokenizer (tokenizer.json + tokenizer_config.json + special map).

CLI (same data sources and filters as training, via `training.data.build.iter_texts`):
    python -m training.tokenizer --source npm --dir PKGS --vocab-size N --output-dir DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from server import fim

EOS = fim.EOS
FIM_TOKENS = list(fim.TOKENS)
SPECIAL_TOKENS = [EOS, *FIM_TOKENS]
MODEL_MAX_LENGTH = 2048  # informational for transformers; the model config decides the real context


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path | str, min_frequency: int = 2) -> Any:
    """Train, save to `out_dir` and return a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (bytes + special tokens)")
    tok = Tokenizer(models.BPE())
    # add_prefix_space=False: code is not prose; a leading space would shift every first token.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unk ever
        show_progress=False,
    )
    tok.train_from_iterator(_nonempty(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        additional_special_tokens=FIM_TOKENS,
        model_max_length=MODEL_MAX_LENGTH,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return fast


def _nonempty(texts: Iterable[str]) -> Iterator[str]:
    return (t for t in texts if t)


def main(argv: list[str] | None = None) -> int:
    from training.data.build import iter_texts
    from training.data.config import SOURCES, DataConfig, TokenizerConfig

    defaults, tdefaults = DataConfig(), TokenizerConfig()
    parser = argparse.ArgumentParser(
        prog="python -m training.tokenizer",
        description="Train a byte-level BPE tokenizer with FIM tokens on filtered training data.",
    )
    parser.add_argument("--source", choices=SOURCES, default=defaults.source, help="data source")
    parser.add_argument("--dir", default="", help="npm/local: dir of unpacked packages")
    parser.add_argument("--files", default="", help="github-code/eli5: glob of local parquet/json files")
    parser.add_argument("--packages-file", default="", help="npm: name@version list fetched with npm pack")
    parser.add_argument("--max-records", type=int, default=0, help="cap on documents used (0 = all)")
    parser.add_argument("--vocab-size", type=int, default=tdefaults.vocab_size)
    parser.add_argument("--min-frequency", type=int, default=tdefaults.min_frequency)
    parser.add_argument("--output-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    cfg = DataConfig(
        source=args.source, dir=args.dir, files=args.files, packages_file=args.packages_file,
        max_records=args.max_records,
    )
    count = 0

    def texts() -> Iterator[str]:
        nonlocal count
        for record in iter_texts(cfg):
            count += 1
            yield record.text

    tok = train_tokenizer(texts(), args.vocab_size, args.output_dir, args.min_frequency)
    print(f"trained a {len(tok)}-token tokenizer on {count} documents into {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
