"""Characters per token of our byte-level BPE at several vocabulary sizes, on held-out code.

    python benchmarks/tokenizer_vocab.py --train-tokens corpus-data/tokens-v2 \
        --train-tokenizer server/models/default --dev-dir corpus-data/devnpm [--sample-mb 24] [--vocab 8192 16384 32768]

Each tokenizer is trained (`training.tokenizer.train_tokenizer`, as scratch recipes do) on the
same seeded sample of the training corpus, decoded from the packed token file, and measured on the
dev-set packages (`data.dir` read with the training filters): characters per token, and what the
output layer costs at the shipped width (vocab × n_embd parameters, tied with the input embedding).
More characters per token means more code per context and per forward pass; the sweep that picks
the size weighs that against the larger output layer at equal compute (docs/model.md).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-tokens", type=Path, required=True, help="packed corpus (training.data.tokens pack)")
    ap.add_argument("--train-tokenizer", required=True, help="the tokenizer that packed it (to decode)")
    ap.add_argument("--dev-dir", required=True, help="held-out npm package folders")
    ap.add_argument("--sample-mb", type=float, default=24.0, help="characters of training text to fit on")
    ap.add_argument("--vocab", type=int, nargs="+", default=[8192, 16384, 32768])
    ap.add_argument("--n-embd", type=int, default=256, help="width for the output-layer cost column")
    args = ap.parse_args()

    from training.data.build import iter_texts
    from training.data.config import DataConfig
    from training.data.tokenfile import open_tokens
    from training.modeling import load_tokenizer
    from training.tokenizer import train_tokenizer

    packed, base = open_tokens(args.train_tokens), load_tokenizer(args.train_tokenizer)
    order = list(range(len(packed)))
    random.Random(0).shuffle(order)
    sample: list[str] = []
    size = 0
    for i in order:
        text = base.decode(packed.document(i).tolist())
        sample.append(text)
        size += len(text)
        if size >= args.sample_mb * 1e6:
            break
    dev = [r.text for r in iter_texts(DataConfig(source="npm", dir=args.dev_dir))]
    dev_chars = sum(len(t) for t in dev)
    print(f"fit on {len(sample)} files / {size / 1e6:.1f} M chars; dev: {len(dev)} files / {dev_chars / 1e6:.2f} M chars")
    print(f"{'vocab':>6} {'fit s':>6} {'dev chars/token':>16} {'vs first':>9} {'output layer params':>20}")
    first = None
    for vocab in args.vocab:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            tok = train_tokenizer(sample, vocab, Path(tmp))
            fit = time.perf_counter() - t0
        n = sum(len(ids) for ids in tok(dev, add_special_tokens=False)["input_ids"])
        cpt = dev_chars / n
        first = first or cpt
        print(f"{vocab:>6} {fit:>6.0f} {cpt:>16.3f} {cpt / first:>8.2f}x {vocab * args.n_embd:>20,}")
        sys.stdout.flush()
    shipped = sum(len(ids) for ids in base(dev, add_special_tokens=False)["input_ids"])
    print(f"shipped tokenizer ({len(base)} tokens, fit on corpus v1): {dev_chars / shipped:.3f} chars/token")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
