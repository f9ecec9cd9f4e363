"""training.tokenizer: a real byte-level BPE with FIM tokens, saved as a transformers fast tokenizer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import js_source
from transformers import AutoTokenizer

from training.tokenizer import FIM_TOKENS, train_tokenizer

REPO = Path(__file__).resolve().parents[2]


def test_trains_round_trips_and_keeps_fim_tokens_whole(tmp_path: Path) -> None:
    texts = [js_source(i) for i in range(30)]
    tok = train_tokenizer(texts, 400, tmp_path, min_frequency=2)
    assert len(tok) == 400
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.eos_token == "<|endoftext|>" and reloaded.pad_token == "<|endoftext|>"
    sample = "const µ = () => { return `ünïcode ${x}`; }; // 日本\n\tlet a = 1;\n"
    ids = reloaded(sample, add_special_tokens=False)["input_ids"]
    assert reloaded.decode(ids) == sample  # byte-level: any text round-trips, no unk
    for special in ["<|endoftext|>", *FIM_TOKENS]:
        sid = reloaded.convert_tokens_to_ids(special)
        assert reloaded(special, add_special_tokens=False)["input_ids"] == [sid]
    fim = "<fim_suffix>}\n<fim_prefix>function f() {\n<fim_middle>  return 1;"
    enc = reloaded(fim, add_special_tokens=False)["input_ids"]
    assert enc[0] == reloaded.convert_tokens_to_ids("<fim_suffix>")
    assert reloaded.decode(enc) == fim
    # merges were learned from the corpus: a frequent keyword is one token
    assert len(reloaded("function", add_special_tokens=False)["input_ids"]) == 1


def test_rejects_a_vocab_too_small_for_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["x"], 100, tmp_path)


def test_cli_trains_on_npm_packages(npm_packages_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    proc = subprocess.run(
        [sys.executable, "-m", "training.tokenizer", "--source", "npm", "--dir", str(npm_packages_dir),
         "--vocab-size", "400", "--output-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) == 400 and "<fim_middle>" in tok.get_vocab()
