"""training.evaluate: scoring functions, perplexity consistent with training's eval, line completion via the server."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
from fixtures_runner import SMALL, read_json, write_repetitive_packages

from training import evaluate
from training.finetune import main as finetune
from training.line_eval import line_available
from training.metrics import baseline_prediction, edit_similarity, exact_match, levenshtein, score, sign_test
from training.perplexity import data_config


def test_levenshtein_and_edit_similarity() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert levenshtein("flaw", "lawn") == 2
    assert edit_similarity("  return a + b;", "return a + b;  ") == 1.0
    assert edit_similarity("abcd", "abce") == pytest.approx(0.75)
    assert edit_similarity("", "") == 1.0 and edit_similarity("", "xy") == 0.0
    assert exact_match(" x ", "x") and not exact_match("x;", "x")


def test_baseline_repeats_previous_non_empty_line() -> None:
    assert baseline_prediction("a = 1;\n  b = 2;\n\n  c") == "b = 2;"
    assert baseline_prediction("only") == ""
    rows = [
        {"id": "1", "prefix": "x = 1;\n", "target": "x = 1;"},
        {"id": "2", "prefix": "x = 1;\n", "target": "y"},
        {"id": "3", "prefix": "", "suffix": ""},  # no target: predicted, not scored
    ]
    result = score(rows, {"1": "x = 1;", "2": "z", "3": ""})
    assert result["scored"] == 2
    assert result["model"]["exact_match"] == 0.5 and result["baseline_previous_line"]["exact_match"] == 0.5


def test_sign_test_and_paired_comparison_with_the_copy_baseline() -> None:
    assert sign_test(0, 0) == 1.0 and sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)  # 5 of 5 one way: p = 2 * 0.5^5
    assert sign_test(1, 9) == sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    # 30 rows: ours right on 12 where the copy is wrong, the copy right on 2 where ours is wrong.
    rows = [{"id": str(i), "prefix": "", "target": f"line {i}"} for i in range(30)]
    ours = {str(i): f"line {i}" if i < 14 else "x" for i in range(30)}
    copies = {str(i): f"line {i}" if 12 <= i < 16 else "y" for i in range(30)}
    result = score(rows, ours, copies)["model_vs_copy"]
    assert (result["exact_only_ours"], result["exact_only_other"]) == (12, 2)
    assert result["sign_test_p"] == pytest.approx(sign_test(12, 2)) and result["sign_test_p"] < 0.05
    lo, hi = result["edit_similarity_gain_ci95"]
    assert 0 < lo < hi < 1
    even = score(rows, ours, ours)["model_vs_copy"]
    assert even["sign_test_p"] == 1.0 and even["edit_similarity_gain_ci95"] == [0.0, 0.0]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir_no_fim: Path) -> Path:
    """A tiny GPT-2 fitted to the repetitive fixture (so completions are predictable).

    Without FIM tokens the server prompts with the prefix alone: a left-to-right model this small
    learns that within a minute, while SPM infilling needs far more steps."""
    root = tmp_path_factory.mktemp("eval")
    pkgs = write_repetitive_packages(root / "pkgs")
    out = root / "model"
    rc = finetune([
        "--recipe", "scratch-js", "--output-dir", str(out), *SMALL,
        "--set", f"data.dir={pkgs}", "--set", f"tokenizer.name_or_path={tiny_model_dir_no_fim}", "--set", "data.dedup=false",
        "--set", "data.fim_rate=0", "--set", "model.n_layer=2", "--set", "model.n_embd=64", "--set", "model.n_head=2",
        "--set", "train.max_steps=60", "--set", "train.learning_rate=3e-3", "--set", "train.warmup_steps=5",
    ])
    assert rc == 0
    return out


def test_perplexity_matches_the_training_eval(trained_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    summary_path = tmp_path / "ppl.json"
    # Same data config as training (from training_config.json); no FIM, as in that training run.
    assert evaluate.main(["perplexity", "--model", str(trained_dir), "--summary", str(summary_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == read_json(summary_path)
    trained = read_json(trained_dir / "metrics.json")
    assert summary["blocks"] == trained["eval_blocks"]
    assert summary["loss"] == pytest.approx(trained["eval_loss"], abs=1e-4)
    assert summary["perplexity"] == pytest.approx(trained["perplexity"], rel=1e-3)
    # per character: the same nats spread over the decoded text of the predicted tokens
    from training.data.build import build_lm_datasets
    from training.modeling import load_tokenizer

    tok = load_tokenizer(str(trained_dir))
    cfg = data_config(argparse.Namespace(model=str(trained_dir), recipe=None, overrides=[]))
    rows = build_lm_datasets(cfg.data, tok, fim=False, output_dir=None).eval["input_ids"]
    chars = sum(len(tok.decode(r[1:], skip_special_tokens=True)) for r in rows)
    assert summary["chars"] == chars > summary["tokens"]
    assert summary["nats_per_char"] == pytest.approx(summary["loss"] * len(rows) * (len(rows[0]) - 1) / chars)
    assert summary["bits_per_char"] == pytest.approx(summary["nats_per_char"] / math.log(2))


def test_lines_predicts_through_the_server_pipeline(trained_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = "function add(a, b) {\n  return a + b;\n}\nfor (let i = 0; i < items.length; i++) {\n  console.log(items[i]);\n}\n"
    rows = [
        {"id": "ret", "prefix": block * 3 + "function add(a, b) {\n  return a", "suffix": "\n}\n", "target": " + b;"},
        {"id": "log", "prefix": block * 3 + "for (let i = 0; i < items.length; i++) {\n  console.",
         "suffix": "\n}\n", "target": "log(items[i]);"},
        {"id": "loop", "prefix": block * 3 + "for (let i = 0; i < ", "suffix": "\n", "target": "items.length; i++) {"},
        {"id": "nolabel", "prefix": block, "suffix": ""},
        {"id": "cut", "prefix": "x", "suffix": "", "target": "never read: --limit stops before"},
    ]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    preds_path, summary_path = tmp_path / "preds.jsonl", tmp_path / "summary.json"
    rc = evaluate.main(["lines", "--model", str(trained_dir), "--input", str(src), "--output", str(preds_path),
                        "--limit", "4", "--max-new-tokens", "16", "--summary", str(summary_path)])
    assert rc == 0
    preds = [json.loads(line) for line in preds_path.read_text().splitlines()]
    assert [p["id"] for p in preds] == ["ret", "log", "loop", "nolabel"]
    assert all(isinstance(p["prediction"], str) and "\n" not in p["prediction"] for p in preds)  # single line
    summary = read_json(summary_path)
    assert summary["rows"] == 4 and summary["scored"] == 3 and summary["model_dir"] == str(trained_dir)
    by_id = {p["id"]: p["prediction"] for p in preds}
    scored = rows[:3]
    em = sum(by_id[r["id"]].strip() == r["target"].strip() for r in scored) / 3
    assert summary["model"]["exact_match"] == pytest.approx(em)
    # Each target line is written out earlier in its own row: every row could have been copied.
    assert summary["copy_ceiling"]["rows_available"] == 1.0
    assert summary["copy_ceiling"]["model_exact_inside"] == pytest.approx(em)
    # The model learned the fixture: it completes these lines better than repeating the previous line.
    assert summary["model"]["edit_similarity"] > summary["baseline_previous_line"]["edit_similarity"] + 0.2, preds


def test_lines_records_a_failing_row_as_empty_and_goes_on(
    trained_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A row the tokenizer cannot encode (a lone surrogate, legal in JSON) is an empty prediction
    and a warning; the rows after it, and an empty prefix (a new file), are still completed."""
    rows = [
        {"id": "empty", "prefix": "", "suffix": "\nconst x = 1;\n", "target": "const fs = require('fs');"},
        {"id": "bad", "prefix": "const s = '\ud800';\nconst fs = require(", "suffix": "", "target": "'fs');"},
        {"id": "ok", "prefix": "function add(a, b) {\n  return a", "suffix": "\n}\n", "target": " + b;"},
    ]
    src, out, summary_path = tmp_path / "rows.jsonl", tmp_path / "preds.jsonl", tmp_path / "summary.json"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = evaluate.main(["lines", "--model", str(trained_dir), "--input", str(src), "--output", str(out),
                        "--max-new-tokens", "12", "--summary", str(summary_path)])
    assert rc == 0
    preds = {p["id"]: p["prediction"] for p in map(json.loads, out.read_text().splitlines())}
    assert list(preds) == ["empty", "bad", "ok"] and preds["bad"] == ""
    assert preds["ok"].strip() == "+ b;", preds
    summary = read_json(summary_path)
    assert summary["failed_rows"] == ["bad"] and summary["scored"] == 3
    assert any("row bad failed" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_lines_bad_input_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"prefix": "x"}) + "\n")
    rc = evaluate.main(["lines", "--model", str(tiny_model_dir), "--input", str(src), "--output", str(tmp_path / "p.jsonl")])
    assert rc == 2


def test_copy_baseline_copies_the_rest_of_the_line_after_the_longest_match() -> None:
    from server.retrieval.copies import copy_prediction

    other = "const a = 1;\nfunction area(r) {\n  return Math.PI * r * r;\n}\n"
    # The longest tail found is "\n  return " (in `other`): the rest of that line is copied.
    assert copy_prediction("function size(r) {\n  return ", "\n}\n", [other]) == "Math.PI * r * r;"
    # Most common continuation wins over the first one.
    others = ["x.on('a', f);\n", "x.on('b', g);\n", "x.on('b', g);\n"]
    assert copy_prediction("x.on(", "", others) == "'b', g);"
    # The file's own earlier lines count; the cursor position itself does not.
    assert copy_prediction("let t = now();\nlet u = 2;\nlet t = ", "", []) == "now();"
    assert copy_prediction("zzz", "", ["abc"]) == ""


def test_line_available_finds_the_completed_line_elsewhere_never_at_the_cursor() -> None:
    prefix = "const a = 1;\nfunction f() {\n  return "
    assert line_available(prefix, "\n}\n", "a + 1;", ["x\n  return a + 1;\n"])  # another file
    assert not line_available(prefix, "\n}\n", "a + 2;", ["  return a + 1;\n"])
    assert line_available("let t = now();\nlet t = ", "", "now();", [])  # earlier in the file
    assert line_available("a();\n", "\nb();\n", "b();", [])  # later in the file
    # The cursor line itself is not a source: neither its typed part nor what follows the cursor.
    assert not line_available("foo(", "bar);\n", "bar);", [])
    assert not line_available("x\n", "", "   ", ["   "])  # nothing to complete


def test_lines_skip_and_mix_select_rows_and_change_the_mixing(tiny_model_dir: Path, tmp_path: Path) -> None:
    block = "function add(a, b) {\n  return a + b;\n}\n"
    rows = [{"id": f"r{i}", "prefix": block * 2 + "function add(a, b) {\n  return", "suffix": "\n}\n",
             "target": " a + b;"} for i in range(4)]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def run(*extra: str) -> tuple[list[str], dict[str, object]]:
        out, summary = tmp_path / "p.jsonl", tmp_path / "s.json"
        assert evaluate.main(["lines", "--model", str(tiny_model_dir), "--input", str(src), "--output", str(out),
                              "--max-new-tokens", "8", "--summary", str(summary), *extra]) == 0
        return [json.loads(x)["id"] for x in out.read_text().splitlines()], read_json(summary)

    ids, summary = run("--skip", "1", "--limit", "2", "--mix", "max_weight=0.5", "--mix", "min_length=4")
    assert ids == ["r1", "r2"] and summary["skip"] == 1
    from server.settings import Settings

    assert summary["max_prompt_tokens"] == Settings().max_prompt_tokens  # the server's default
    assert run("--limit", "1", "--max-prompt-tokens", "64")[1]["max_prompt_tokens"] == 64
    assert summary["mix"]["max_weight"] == 0.5 and summary["mix"]["min_length"] == 4
    # the mixing does what it says: with the counts at full weight the file's own `return a + b;` is copied
    # (copy verdicts off, so every token goes through the mixture)
    _, copied = run("--mix", "max_weight=1.0", "--mix", "min_length=1", "--no-copy-verdicts")
    assert copied["model"]["exact_match"] == 1.0  # type: ignore[index]
    _, unmixed = run("--mix", "max_weight=0.0", "--no-copy-verdicts")  # the tiny random model on its own
    assert unmixed["model"]["exact_match"] < 1.0  # type: ignore[index]
    for bad in ("nope=1", "tau=fast", "tau"):
        assert evaluate.main(["lines", "--model", str(tiny_model_dir), "--input", str(src), "--output",
                              str(tmp_path / "x.jsonl"), "--mix", bad]) == 2
