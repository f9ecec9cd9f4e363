"""Tokenise a corpus once into a token file (`training.data.tokenfile`) that training reads directly.

    python -m training.data.tokens pack --tokenizer DIR --data-dir corpus-data/npm-v2 --out corpus-data/tokens-v2
    python -m training.data.tokens info corpus-data/tokens-v2

`pack` reads, filters and deduplicates the corpus as training would (`training.data.build`) and
writes every kept document's ids with its manifest row. Training reads a packed corpus with
`--set data.tokens=OUT`: the same documents, package split and manifest as reading `data.dir`
with the same filters, without reading, deduplicating or tokenising anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.data.build import tokenized_records
from training.data.manifest import Manifest
from training.data.tokenfile import TokenFile, manifest_sha, open_tokens, paths, subset, write_ids


def pack_corpus(data_cfg: Any, tokenizer: Any, out: Path) -> TokenFile:
    """Pack what `build_lm_datasets` would train on: the records of `data_cfg` after every filter.

    The same reader, decontamination, quality filters, dedup and tokenizer compression filter
    (`chars_per_token`) as the text path; each kept document's manifest row and every drop count
    go into the sidecar, so training from the file writes the same manifest.
    """
    from dataclasses import asdict

    manifest = Manifest()
    kept, plain = tokenized_records(data_cfg, tokenizer, manifest)
    return write_ids(
        plain, tokenizer, out,
        manifest_sha=manifest_sha(r.sha256 for r in kept),
        documents=[r.manifest_row() for r in kept],
        extra={"dropped": dict(sorted(manifest.dropped.items())), "data": asdict(data_cfg)},
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.data.tokens", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="tokenise the filtered, deduplicated corpus of data.dir once")
    p.add_argument("--tokenizer", required=True, help="tokenizer dir (or a model dir holding one)")
    p.add_argument("--data-dir", required=True, type=Path,
                   help="unpacked npm packages (data.dir); with --packages, the fetch folder they are read from")
    p.add_argument("--packages", type=Path, default=None,
                   help="pinned `name@version` list (data.packages_file): pack only these packages of --data-dir "
                        "(a folder missing one is fetched into it)")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes OUT.bin and OUT.json")
    p.add_argument("--source", choices=("npm", "local"), default="npm", help="how data-dir is read (data.source)")
    sp = sub.add_parser("subset", help="whole packages of a token file, seeded, up to a token count")
    sp.add_argument("path", type=Path, help="the token file to take from")
    sp.add_argument("--tokenizer", required=True, help="its tokenizer (checked against the file)")
    sp.add_argument("--out", required=True, type=Path, help="output stem")
    sp.add_argument("--max-tokens", required=True, type=int)
    sp.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("info", help="print a token file's sidecar (without the offsets)")
    i.add_argument("path", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "info":
        tf = open_tokens(args.path)
        print(json.dumps({k: v for k, v in tf.meta.items() if k not in ("offsets", "documents")}, indent=1))
        return 0
    from transformers import AutoTokenizer

    def load_tokenizer(path: str) -> Any:  # packing adds no special tokens: no padding setup needed
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)

    if args.cmd == "subset":
        tokenizer = load_tokenizer(args.tokenizer)
        src = open_tokens(args.path)
        src.check(tokenizer)
        tf = subset(src, tokenizer, args.out, max_tokens=args.max_tokens, seed=args.seed)
        print(f"{len(tf)} documents of {tf.meta['subset_of']['packages']} packages, {tf.meta['n_tokens']} tokens "
              f"-> {paths(args.out)[0]}", file=sys.stderr)
        return 0
    from training.data.config import DataConfig  # heavy imports only for `pack`

    if args.packages is not None:
        cfg = DataConfig(source="npm", packages_file=str(args.packages), npm_cache_dir=str(args.data_dir))
    else:
        cfg = DataConfig(source=args.source, dir=str(args.data_dir))
    tf = pack_corpus(cfg, load_tokenizer(args.tokenizer), args.out)
    print(f"{len(tf)} documents, {tf.meta['n_tokens']} tokens ({tf.meta['dtype']}) -> {paths(args.out)[0]}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
