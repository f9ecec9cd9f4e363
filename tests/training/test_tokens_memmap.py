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

from training.data.build import build_lm_datasets
from training.data.config import DataConfig
from training.data.manifest import read_manifest
from training.data.packing import fim_token_documents
from training.data.tokenfile import (
    TokenFileError,
    dtype_for,
    manifest_sha,
    open_tokens,
    pack,
    paths,
    subset,
    tokenizer_hash,
)
from training.data.tokens import main, pack_corpus
from training.modeling import load_tokenizer

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


# ------------------------------------------------------------ training reads the packed corpus

def _build(cfg: DataConfig, tokenizer: Any, *, fim: bool, out: Path | None = None) -> Any:
    return build_lm_datasets(cfg, tokenizer, fim=fim, output_dir=out, with_labels=True)


def test_training_from_the_token_file_matches_reading_the_packages(
    npm_packages_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    text_cfg = DataConfig(source="npm", dir=str(npm_packages_dir), block_size=64, eval_fraction=0.2, fim_rate=0.0)
    tf = pack_corpus(text_cfg, tokenizer, tmp_path / "corpus")
    assert "lodash" not in {d["package"] for d in tf.meta["documents"]}  # reserved: never packed
    token_cfg = DataConfig(tokens=str(tmp_path / "corpus"), block_size=64, eval_fraction=0.2, fim_rate=0.0)
    a = _build(text_cfg, tokenizer, fim=False, out=tmp_path / "a")
    b = _build(token_cfg, tokenizer, fim=False, out=tmp_path / "b")
    for split in ("train", "eval"):
        assert len(getattr(a, split)) > 0
        assert getattr(a, split)["input_ids"] == getattr(b, split)["input_ids"]
        assert getattr(b, split)["labels"] == getattr(b, split)["input_ids"]
    # the same manifest rows (package, version, license, path, sha256, split) and drop counts
    rows = lambda d: sorted(json.dumps(r, sort_keys=True) for r in read_manifest(d / "data_manifest.jsonl"))  # noqa: E731
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    assert a.manifest.dropped == b.manifest.dropped and a.manifest.dropped["package_reserved"] > 0
    assert b.manifest.extra["tokens_file"]["n_tokens"] == tf.meta["n_tokens"]


def test_token_file_fim_cuts_at_token_boundaries(npm_packages_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    pack_corpus(DataConfig(source="npm", dir=str(npm_packages_dir)), tokenizer, tmp_path / "corpus")
    cfg = DataConfig(tokens=str(tmp_path / "corpus"), block_size=64, eval_fraction=0.2, fim_rate=1.0)
    data = _build(cfg, tokenizer, fim=True)
    pre, mid, suf = (tokenizer.convert_tokens_to_ids(t) for t in ("<fim_prefix>", "<fim_middle>", "<fim_suffix>"))
    ids = [t for row in data.train["input_ids"] for t in row]
    assert ids.count(mid) > 0 and ids.count(pre) > 0 and ids.count(suf) > 0
    # each document is rebuilt exactly from its FIM pieces, in both orders
    tf = open_tokens(tmp_path / "corpus")
    docs = [tf.document(i) for i in range(len(tf))]
    keys = [d["sha256"] for d in tf.meta["documents"]]
    cut = fim_token_documents(docs, keys, (pre, mid, suf), fim_rate=1.0, fim_spm_rate=0.5, seed=3)
    orders = set()
    for doc, out in zip(docs, cut, strict=True):
        out = out.tolist()
        if out[0] == pre:  # PSM: <pre> p <suf> s <mid> m
            i, j = out.index(suf), out.index(mid)
            p, s, m = out[1:i], out[i + 1 : j], out[j + 1 :]
        else:  # SPM: <suf> s <pre> p <mid> m
            assert out[0] == suf
            i, j = out.index(pre), out.index(mid)
            s, p, m = out[1:i], out[i + 1 : j], out[j + 1 :]
        orders.add(out[0])
        assert p + m + s == doc.tolist()
    assert orders == {pre, suf}
    # seeded: the same cuts again
    again = fim_token_documents(docs, keys, (pre, mid, suf), fim_rate=1.0, fim_spm_rate=0.5, seed=3)
    assert all((x == y).all() for x, y in zip(cut, again, strict=True))


def test_token_file_of_another_tokenizer_or_without_rows_is_refused(
    npm_packages_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    pack_corpus(DataConfig(source="npm", dir=str(npm_packages_dir)), tokenizer, tmp_path / "corpus")
    other = build_tokenizer(tmp_path / "other", vocab_size=500)
    with pytest.raises(TokenFileError, match="another tokenizer"):
        _build(DataConfig(tokens=str(tmp_path / "corpus"), block_size=64), other, fim=False)
    pack(DOCS, tokenizer, tmp_path / "plain")  # texts only: no manifest rows to train with
    with pytest.raises(TokenFileError, match="no document rows"):
        _build(DataConfig(tokens=str(tmp_path / "plain"), block_size=8), tokenizer, fim=False)


def test_finetune_trains_from_a_token_file(npm_packages_dir: Path, tmp_path: Path) -> None:
    from tiny_model import build_tiny_model

    from training.finetune import main as finetune

    model_dir = build_tiny_model(tmp_path / "model")
    pack_corpus(DataConfig(source="npm", dir=str(npm_packages_dir)), load_tokenizer(str(model_dir)), tmp_path / "corpus")
    out = tmp_path / "run"
    rc = finetune(["--recipe", "codeparrot-js", "--output-dir", str(out), "--set", f"model.name_or_path={model_dir}",
                   "--set", f"data.tokens={tmp_path / 'corpus'}", "--set", "data.dir=/nonexistent",
                   "--set", "data.block_size=32", "--set", "data.eval_fraction=0.2",
                   "--set", "train.max_steps=3", "--set", "train.per_device_train_batch_size=2",
                   "--set", "train.progress_bar=false", "--set", "train.save_steps=100"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["eval_loss"] is not None
    summary = json.loads((out / "data_manifest_summary.json").read_text())
    assert summary["tokens_file"]["path"] == str(tmp_path / "corpus") and summary["kept"] > 0


def test_a_missing_token_file_is_a_config_error_before_any_work(tmp_path: Path) -> None:
    from training.config import ConfigError, apply_overrides, load_recipe, validate

    cfg = apply_overrides(load_recipe("scratch-js"), [f"data.tokens={tmp_path / 'nothing'}"])
    with pytest.raises(ConfigError, match=r"data\.tokens"):
        validate(cfg)


# ------------------------------------------------------------ subsets that fit a accelerator run, pinned lists

def _package_tokens(tf: Any) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for i, row in enumerate(tf.meta["documents"]):
        sizes[row["package"]] = sizes.get(row["package"], 0) + int(tf.offsets[i + 1] - tf.offsets[i])
    return sizes


def test_subset_takes_whole_packages_up_to_the_token_count(
    npm_packages_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    full = pack_corpus(DataConfig(source="npm", dir=str(npm_packages_dir)), tokenizer, tmp_path / "corpus")
    sizes = _package_tokens(full)
    assert len(sizes) >= 4
    cap = sum(sizes.values()) // 2
    part = subset(full, tokenizer, tmp_path / "part", max_tokens=cap, seed=1)
    got = _package_tokens(part)
    assert 0 < part.meta["n_tokens"] <= cap and 0 < len(got) < len(sizes)
    assert got == {p: sizes[p] for p in got}  # every chosen package whole, none cut
    # the same documents, ids and rows as the full file, in the full file's order
    where = {row["sha256"]: i for i, row in enumerate(full.meta["documents"])}
    picked = [where[row["sha256"]] for row in part.meta["documents"]]
    assert picked == sorted(picked)
    for j, i in enumerate(picked):
        assert part.document(j).tolist() == full.document(i).tolist()
    assert part.meta["manifest_sha256"] == manifest_sha(r["sha256"] for r in part.meta["documents"])
    assert part.meta["dropped"] == full.meta["dropped"]
    assert part.meta["subset_of"]["manifest_sha256"] == full.meta["manifest_sha256"]
    # seeded: the same seed picks the same packages; the CLI writes the same file
    again = subset(full, tokenizer, tmp_path / "again", max_tokens=cap, seed=1)
    assert again.meta["manifest_sha256"] == part.meta["manifest_sha256"]
    tokenizer.save_pretrained(tmp_path / "tok")
    assert main(["subset", str(tmp_path / "corpus"), "--tokenizer", str(tmp_path / "tok"), "--out",
                 str(tmp_path / "cli"), "--max-tokens", str(cap), "--seed", "1"]) == 0
    assert open_tokens(tmp_path / "cli").meta["manifest_sha256"] == part.meta["manifest_sha256"]


def test_pack_reads_only_the_pinned_packages_of_a_fetch_folder(tokenizer: Any, tmp_path: Path) -> None:
    from conftest import write_package

    dest = tmp_path / "fetched"
    for i, name in enumerate(("one", "two", "three")):
        write_package(dest, f"{name}@1.0.0", {"name": name, "version": "1.0.0", "license": "MIT"},
                      {"index.js": js_source(300 + i)})
    (tmp_path / "list.txt").write_text("# pinned\none@1.0.0\nthree@1.0.0\n")
    tokenizer.save_pretrained(tmp_path / "tok")
    assert main(["pack", "--tokenizer", str(tmp_path / "tok"), "--data-dir", str(dest), "--packages",
                 str(tmp_path / "list.txt"), "--out", str(tmp_path / "pinned")]) == 0
    assert {d["package"] for d in open_tokens(tmp_path / "pinned").meta["documents"]} == {"one", "three"}
