"""github-code parquet (local shards of the raw schema), eli5 json, and hub fail-fast."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import eli5_rows, js_source
from transformers import AutoTokenizer

from server.errors import HubUnavailableError
from server.hub import DATASETS_OFFLINE_VARS, ensure_reachable
from training.data.build import build_lm_datasets, iter_texts
from training.data.config import DataConfig


def gh_cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"source": "github-code", "files": str(root / "*.parquet"), "block_size": 64, **kw})


def test_github_code_keeps_permissive_javascript_only(github_code_parquet: Path) -> None:
    dropped: list[str] = []
    records = list(iter_texts(gh_cfg(github_code_parquet), dropped.append))
    assert sorted(r.package_or_repo for r in records) == [*(f"user{i}/proj{i}" for i in range(6)), "user9/lib"]
    assert all(r.source == "github-code" and r.version == "" for r in records)
    first = next(r for r in records if r.package_or_repo == "user0/proj0")
    assert first.text == js_source(500) and first.path == "src/mod0.js" and first.license == "mit"
    for reason in ("extension", "license_not_permissive", "max_line_length", "excluded_dir",
                   "exact_duplicate", "near_duplicate", "package_reserved"):
        assert reason in dropped, reason
    assert dropped.count("license_not_permissive") == 2  # gpl-3.0, bsd-3-clause


def test_github_code_dedup_off_keeps_copies(github_code_parquet: Path) -> None:
    repos = {r.package_or_repo for r in iter_texts(gh_cfg(github_code_parquet, dedup=False))}
    assert {"dup/proj", "near/proj"} <= repos


def test_github_code_build_manifest_rows_name_repos(github_code_parquet: Path, tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = build_lm_datasets(gh_cfg(github_code_parquet, eval_fraction=0.2), tok, fim=True, output_dir=None)
    rows = data.manifest.rows
    assert all("repo" in r and "package" not in r for r in rows)
    assert {r["repo"] for r in rows if r["split"] == "eval"}.isdisjoint({r["repo"] for r in rows if r["split"] == "train"})
    assert len(data.train) > 0 and len(data.eval) > 0


def test_github_code_code_column_and_missing_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"code": [js_source(1)], "repo_name": ["a/b"], "path": ["x.js"], "license": ["isc"]}),
                   tmp_path / "old.parquet")
    records = list(iter_texts(DataConfig(source="github-code", files=str(tmp_path / "*.parquet"))))
    assert [r.text for r in records] == [js_source(1)]
    with pytest.raises(FileNotFoundError, match="matches no file"):
        list(iter_texts(DataConfig(source="github-code", files=str(tmp_path / "none-*.parquet"))))


@pytest.mark.parametrize("source", ["github-code", "eli5"])
def test_hub_default_fails_fast_offline(source: str) -> None:
    # tests/conftest.py sets HF_HUB_OFFLINE=1: the error comes before any datasets/hub call
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE") as info:
        list(iter_texts(DataConfig(source=source)))
    assert "data.files" in str(info.value)


def test_hub_probe_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")

    def refuse(*_args: object, **_kw: object) -> socket.socket:
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(HubUnavailableError, match="unreachable"):
        ensure_reachable("data.source=github-code", "use local files", DATASETS_OFFLINE_VARS)
    with pytest.raises(HubUnavailableError):
        list(iter_texts(DataConfig(source="github-code", files="hf://datasets/codeparrot/github-code/data/x.parquet")))


def test_eli5_flattens_answers(eli5_json: Path) -> None:
    dropped: list[str] = []
    records = list(iter_texts(DataConfig(source="eli5", files=str(eli5_json)), dropped.append))
    rows = eli5_rows()
    assert len(records) == 40 and dropped == ["empty"]
    assert records[0].text == " ".join(rows[0]["answers"]["text"])
    assert records[0].package_or_repo == "q0" and records[0].source == "eli5"
    with_q = next(iter(iter_texts(DataConfig(source="eli5", files=str(eli5_json), eli5_include_question=True))))
    assert with_q.text.startswith(rows[0]["title"] + " ") and with_q.text.endswith(records[0].text)


def test_eli5_build_for_mlm(eli5_json: Path, tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = DataConfig(source="eli5", files=str(eli5_json), block_size=32, eval_fraction=0.1)
    data = build_lm_datasets(cfg, tok, fim=False, output_dir=None, with_labels=False)
    assert data.train.column_names == ["input_ids"] and len(data.eval) > 0
    assert data.manifest.summary()["eval_split"] == "package"
    assert not {r["package"] for r in data.manifest.rows if r["split"] == "eval"} & {
        r["package"] for r in data.manifest.rows if r["split"] == "train"}
