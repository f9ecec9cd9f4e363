"""The token file: a corpus tokenised once into a flat memory-mapped array that training reads.

`write_ids` / `pack` write `OUT.bin` (every document's ids back to back, uint16 when the
vocabulary fits in 65,536 ids, else uint32; no separators: the boundaries are in the sidecar) and
`OUT.json` (tokenizer hash, vocab size, dtype, document offsets, manifest sha, and for a packed
corpus each document's manifest row and the filter counts). `open_tokens` maps the `.bin` with
`np.memmap`, so a resumed or continued run costs no tokenisation, and `TokenFile.check` refuses a
file made with another tokenizer or from other data. The sidecar is written last (and the `.bin`
renamed into place first): a file with a sidecar is complete. `python -m training.data.tokens`
is the command line that packs a corpus into one.

Written by hand because `datasets`' Arrow cache keys on the map function's fingerprint, not
the tokenizer's content, and stores ragged lists rather than one flat array np.memmap can read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1  # bump when the layout of .bin/.json changes
BATCH = 256  # documents per tokenizer call: fast-tokenizer parallelism, bounded memory


class TokenFileError(RuntimeError):
    """The token file does not match the tokenizer or data it is used with."""


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 of what decides the ids: the fast tokenizer's JSON, else its sorted vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def dtype_for(vocab_size: int) -> np.dtype[Any]:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def paths(out: Path) -> tuple[Path, Path]:
    """(`.bin`, `.json`) for an output stem (a given suffix is replaced)."""
    stem = out.with_suffix("") if out.suffix in (".bin", ".json") else out
    return stem.with_name(stem.name + ".bin"), stem.with_name(stem.name + ".json")


@dataclass
class TokenFile:
    """A packed token file: `ids` is the memmap, document i is ids[offsets[i]:offsets[i + 1]]."""

    ids: np.ndarray
    offsets: np.ndarray
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def document(self, i: int) -> np.ndarray:
        return self.ids[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def check(self, tokenizer: Any, manifest_sha: str | None = None) -> None:
        """Raise TokenFileError unless the file was made by this tokenizer (and from this data)."""
        if self.meta["tokenizer_sha256"] != tokenizer_hash(tokenizer):
            raise TokenFileError("token file was made with another tokenizer: re-run `pack`")
        if manifest_sha is not None and self.meta["manifest_sha256"] != manifest_sha:
            raise TokenFileError("token file was made from other data (manifest sha differs): re-run `pack`")


def pack(
    texts: Iterable[str],
    tokenizer: Any,
    out: Path,
    *,
    manifest_sha: str = "",
    batch: int = BATCH,
    documents: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> TokenFile:
    """Tokenise `texts` (no special tokens added) into OUT.bin + OUT.json and open the result.

    `documents` (one manifest row per text, same order) and `extra` (e.g. the filter counts) are
    stored in the sidecar for `training.data.build` to read back.
    """

    def encoded() -> Iterator[list[int]]:
        docs: list[str] = []
        for text in texts:
            docs.append(text)
            if len(docs) >= batch:
                yield from tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"]
                docs = []
        if docs:
            yield from tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"]

    return write_ids(encoded(), tokenizer, out, manifest_sha=manifest_sha, documents=documents, extra=extra)


def write_ids(
    docs: Iterable[Sequence[int] | np.ndarray],
    tokenizer: Any,
    out: Path,
    *,
    manifest_sha: str = "",
    documents: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> TokenFile:
    """Write already tokenised documents as OUT.bin + OUT.json (see `pack`) and open the result."""
    bin_path, meta_path = paths(out)
    bin_path.parent.mkdir(parents=True, exist_ok=True)
    vocab_size = len(tokenizer)
    dtype = dtype_for(vocab_size)
    offsets = [0]
    tmp = bin_path.with_name(bin_path.name + ".tmp")
    meta_path.unlink(missing_ok=True)  # an old sidecar must not describe a half-written file
    with open(tmp, "wb") as f:
        for ids in docs:
            arr = np.asarray(ids, dtype=np.int64)
            if arr.size and int(arr.max()) >= 1 << (8 * dtype.itemsize):
                raise ValueError(f"token id {int(arr.max())} does not fit {dtype}")
            f.write(arr.astype(dtype).tobytes())
            offsets.append(offsets[-1] + int(arr.size))
    if documents is not None and len(documents) != len(offsets) - 1:
        tmp.unlink()
        raise ValueError(f"{len(documents)} document rows for {len(offsets) - 1} documents")
    os.replace(tmp, bin_path)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "tokenizer_sha256": tokenizer_hash(tokenizer),
        "vocab_size": vocab_size,
        "dtype": dtype.name,
        "n_tokens": offsets[-1],
        "n_documents": len(offsets) - 1,
        "manifest_sha256": manifest_sha,
        **(extra or {}),
        "offsets": offsets,
    }
    if documents is not None:
        meta["documents"] = documents
    meta_path.write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return open_tokens(out)


def open_tokens(out: Path) -> TokenFile:
    """Map a packed token file read-only (no copy of the ids is made)."""
    bin_path, meta_path = paths(out)
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} missing: the token file was never finished (run `pack`)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise TokenFileError(f"{meta_path}: format {meta.get('format')}, expected {FORMAT}")
    n = int(meta["n_tokens"])
    dtype = np.dtype(meta["dtype"])
    if bin_path.stat().st_size != n * dtype.itemsize:
        raise TokenFileError(f"{bin_path}: size does not match {n} {dtype} tokens")
    ids = np.memmap(bin_path, dtype=dtype, mode="r", shape=(n,)) if n else np.zeros(0, dtype=dtype)
    return TokenFile(ids, np.asarray(meta["offsets"], dtype=np.int64), meta)


def manifest_sha(shas: Iterable[str]) -> str:
    """One digest for an ordered list of document sha256s (the data the token file holds)."""
    h = hashlib.sha256()
    for s in shas:
        h.update(s.encode("ascii") + b"\n")
    return h.hexdigest()


def subset(tf: TokenFile, tokenizer: Any, out: Path, *, max_tokens: int, seed: int = 0) -> TokenFile:
    """Whole packages of `tf`, in a seeded random order, while they fit in `max_tokens`: a corpus
    that fits a transfer limit (e.g. a remote accelerator's per-call upload) without cutting a package in two.

    Documents keep their order in `tf`; the sidecar keeps the drop counts and records what the
    subset was taken from.
    """
    import random

    rows = tf.meta.get("documents")
    if rows is None:
        raise TokenFileError("the token file has no document rows: `subset` picks whole packages")
    groups = [str(row.get("package") or row.get("repo") or "") for row in rows]
    sizes: dict[str, int] = {}
    for i, key in enumerate(groups):
        sizes[key] = sizes.get(key, 0) + int(tf.offsets[i + 1] - tf.offsets[i])
    order = sorted(sizes)
    random.Random(f"subset:{seed}").shuffle(order)
    chosen: set[str] = set()
    total = 0
    for key in order:
        if total + sizes[key] <= max_tokens:
            chosen.add(key)
            total += sizes[key]
    keep = [i for i, key in enumerate(groups) if key in chosen]
    extra = {k: v for k, v in tf.meta.items()
             if k not in ("format", "tokenizer_sha256", "vocab_size", "dtype", "n_tokens", "n_documents",
                          "manifest_sha256", "offsets", "documents", "subset_of")}
    extra["subset_of"] = {"manifest_sha256": tf.meta["manifest_sha256"], "n_tokens": int(tf.meta["n_tokens"]),
                          "n_documents": len(tf), "max_tokens": max_tokens, "seed": seed,
                          "packages": len(chosen), "of_packages": len(sizes)}
    kept_rows = [rows[i] for i in keep]
    return write_ids((tf.document(i) for i in keep), tokenizer, out,
                     manifest_sha=manifest_sha(str(r["sha256"]) for r in kept_rows),
                     documents=kept_rows, extra=extra)
