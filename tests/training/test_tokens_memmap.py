"""The memory-mapped token file: exact round trip of ids and document boundaries, dtype choice,
refusal of another tokenizer / other data, and the CLI end to end on a fixture package dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import js_source
from tiny_model import build_tokenizer

from training.data.tokens import (
    TokenFileError,
    dtype_for,
    main,
    manifest_sha,
    open_tokens,
    pack,
    paths,
    tokenizer_hash,
)

DOCS = [js_source(1), "", "const a = 1;\n", js_source(2, n_blocks=2), "x" * 3]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tokenizer(tmp_path_factory.mktemp("tok"))


def test_round_trip_is_exact(tokenizer: Any, tmp_path: Path) -> None:
    tf = pack(DOCS, tokenizer, tmp_path / "tokens", manifest_sha="abc", batch=2)
    again = open_tokens(tmp_path / "tokens")
    assert isinstance(again.ids, np.memmap) and again.ids.dtype == np.uint16
    assert len(again) == len(DOCS) == tf.meta["n_documents"]
    for i, text in enumerate(DOCS):
        want = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert again.document(i).tolist() == want
        assert tokenizer.decode(again.document(i).tolist()) == text
    assert int(again.offsets[-1]) == again.ids.size == again.meta["n_tokens"]
    meta = json.loads(paths(tmp_path / "tokens")[1].read_text())
    assert meta["tokenizer_sha256"] == tokenizer_hash(tokenizer) and meta["vocab_size"] == len(tokenizer)
    assert meta["manifest_sha256"] == "abc" and meta["dtype"] == "uint16"


def test_check_refuses_another_tokenizer_or_other_data(tokenizer: Any, tmp_path: Path) -> None:
    tf = pack(DOCS[:2], tokenizer, tmp_path / "t.bin", manifest_sha="abc")
    tf.check(tokenizer, "abc")
    with pytest.raises(TokenFileError, match="other data"):
        tf.check(tokenizer, "def")
    other = build_tokenizer(tmp_path / "tok2", vocab_size=500)
    with pytest.raises(TokenFileError, match="another tokenizer"):
        tf.check(other)


class BigVocab:
    """A tokenizer whose ids do not fit uint16: one id per character code + 70,000."""

    def __len__(self) -> int:
        return 70_000 + 256

    def get_vocab(self) -> dict[str, int]:
        return {chr(c): 70_000 + c for c in range(256)}

    def __call__(self, texts: list[str], **_: Any) -> dict[str, list[list[int]]]:
        return {"input_ids": [[70_000 + ord(ch) for ch in t] for t in texts]}


def test_large_vocab_uses_uint32(tmp_path: Path) -> None:
    assert dtype_for(65_536) == np.uint16 and dtype_for(65_537) == np.uint32
    tf = pack(["ab", "c"], BigVocab(), tmp_path / "big")
    assert tf.ids.dtype == np.uint32
    assert tf.document(0).tolist() == [70_097, 70_098] and tf.document(1).tolist() == [70_099]


def test_unfinished_or_truncated_file_is_refused(tokenizer: Any, tmp_path: Path) -> None:
    pack(DOCS, tokenizer, tmp_path / "t")
    bin_path, meta_path = paths(tmp_path / "t")
    with open(bin_path, "r+b") as f:
        f.truncate(bin_path.stat().st_size - 2)
    with pytest.raises(TokenFileError, match="size"):
        open_tokens(tmp_path / "t")
    meta_path.unlink()
    with pytest.raises(FileNotFoundError, match="never finished"):
        open_tokens(tmp_path / "t")


def test_cli_packs_a_package_dir(npm_packages_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    tokenizer.save_pretrained(tmp_path / "tok")
    assert main(["pack", "--tokenizer", str(tmp_path / "tok"), "--data-dir", str(npm_packages_dir),
                 "--out", str(tmp_path / "corpus")]) == 0
    tf = open_tokens(tmp_path / "corpus")
    assert len(tf) > 0 and tf.meta["manifest_sha256"] != manifest_sha([])
    assert main(["info", str(tmp_path / "corpus")]) == 0
