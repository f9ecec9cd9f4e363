"""server.tokenizer.FastTokenizer gives what transformers' AutoTokenizer gives, token for token,
for the tokenizers it accepts, and refuses the ones whose wrapper does more."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from server.models import DEFAULT_MODEL_DIR
from server.tokenizer import FastTokenizer, load_fast

TEXTS = [
    "function add(a, b) {\n  return a + b;\n}\n",
    "const s = '<|endoftext|>' + \"<fim_prefix>\";\r\n\tlet ünïcode = '日本語 😀';\n",
    "    \n\n   x  =  1 ;;  // trailing   \n",
    "<|endoftext|>const a = 1;<fim_middle>",
    "",
    " ",
]


def auto(directory: Path):  # -> transformers tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


@pytest.fixture(params=["shipped", "tiny", "tiny-no-fim"])
def directory(request: pytest.FixtureRequest, tiny_model_dir: Path, tiny_model_dir_no_fim: Path) -> Path:
    return {"shipped": DEFAULT_MODEL_DIR, "tiny": tiny_model_dir, "tiny-no-fim": tiny_model_dir_no_fim}[request.param]


def test_same_tokens_offsets_and_texts_as_autotokenizer(directory: Path) -> None:
    ours, theirs = load_fast(directory), auto(directory)
    assert isinstance(ours, FastTokenizer)
    assert len(ours) == len(theirs) and ours.get_vocab() == theirs.get_vocab()
    assert ours.eos_token_id == theirs.eos_token_id is not None
    assert set(ours.all_special_ids) == set(theirs.all_special_ids)
    for text in TEXTS:
        for split in (False, True):
            for special in (False, True):
                kwargs = {"add_special_tokens": special, "split_special_tokens": split, "return_offsets_mapping": True}
                a, b = ours(text, **kwargs), theirs(text, **kwargs)
                assert a["input_ids"] == list(b["input_ids"]), (text, kwargs)
                assert [tuple(o) for o in a["offset_mapping"]] == [tuple(o) for o in b["offset_mapping"]]
        assert ours(text)["input_ids"] == list(theirs(text)["input_ids"])
    # "<|endoftext|>" in a file is one special token unless split, as with the wrapper.
    eos_text = "<|endoftext|>"
    assert ours(eos_text, add_special_tokens=False)["input_ids"] == [ours.eos_token_id]
    assert len(ours(eos_text, add_special_tokens=False, split_special_tokens=True)["input_ids"]) > 1


def test_same_decoding_as_autotokenizer(directory: Path) -> None:
    ours, theirs = load_fast(directory), auto(directory)
    assert ours is not None
    singles = [[i] for i in range(len(ours))]
    assert ours.batch_decode(singles) == theirs.batch_decode(singles)
    assert ours.batch_decode(singles, clean_up_tokenization_spaces=False) == theirs.batch_decode(
        singles, clean_up_tokenization_spaces=False
    )
    rng = random.Random(0)
    for _ in range(50):
        ids = [rng.randrange(len(ours)) for _ in range(rng.randrange(1, 30))]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)


@pytest.mark.parametrize(
    "change",
    [
        {"tokenizer_class": "GPT2Tokenizer"},  # its wrapper sets the pre-tokenizer's prefix space
        {"add_prefix_space": True},
        {"clean_up_tokenization_spaces": True},
        {"eos_token": "<|not-in-the-file|>"},
        {"extra_special_tokens": ["<fim_prefix>", "<new_special>"]},
    ],
)
def test_wrapper_options_are_left_to_transformers(tiny_model_dir: Path, tmp_path: Path, change: dict) -> None:
    target = tmp_path / "tok"
    shutil.copytree(tiny_model_dir, target)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    assert load_fast(target) is not None
    config.update(change)
    config_path.write_text(json.dumps(config))
    assert load_fast(target) is None


def test_missing_or_broken_files_are_left_to_transformers(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert load_fast(tmp_path) is None
    target = tmp_path / "tok"
    shutil.copytree(tiny_model_dir, target)
    (target / "tokenizer_config.json").write_text("{not json")
    assert load_fast(target) is None
