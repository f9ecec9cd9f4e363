"""server.prompt: the prompt around the cursor (fill-in-the-middle or the prefix alone) within a
token budget, its stable window start, and the healed word at its end."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from server.prompt import (
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    SUFFIX_SHARE,
    build_prompt,
    fim_ids,
    natural_tail_ids,
    start_ids,
)

BODY = "".join(
    f"function helper{i}(items, limit) {{\n  // keep the first {i} items\n  return items.slice(0, limit + {i});\n}}\n"
    for i in range(120)
)
SUFFIX = "\n}\n\nmodule.exports = { helper0, helper1 };\n" * 40


@pytest.fixture(scope="module")
def fim_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def plain_tokenizer(tiny_model_dir_no_fim: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir_no_fim)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_fim_ids_detects_fim_tokens(fim_tokenizer: Any, plain_tokenizer: Any) -> None:
    ids = fim_ids(fim_tokenizer)
    assert ids == tuple(fim_tokenizer.convert_tokens_to_ids([FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX]))
    assert fim_ids(plain_tokenizer) is None


def test_short_fim_prompt_is_spm_with_everything(fim_tokenizer: Any) -> None:
    prefix, suffix = "function add(a, b) {\n  return ", ";\n}\n"
    p = build_prompt(fim_tokenizer, prefix, suffix, 256)
    pre, mid, suf = fim_ids(fim_tokenizer)  # type: ignore[misc]
    assert p.fim and p.prefix == prefix and p.suffix == suffix
    assert p.prompt_tokens == len(p.input_ids)
    assert p.input_ids[0] == suf and p.input_ids[-1] == mid
    split = p.input_ids.index(pre)
    assert fim_tokenizer.decode(p.input_ids[1:split]) == suffix
    assert fim_tokenizer.decode(p.input_ids[split + 1 : -1]) == prefix


def test_prefix_only_without_fim_tokens(plain_tokenizer: Any) -> None:
    p = build_prompt(plain_tokenizer, "const x = ", " + 1;", 256)
    assert not p.fim and p.suffix == ""
    assert plain_tokenizer.decode(p.input_ids) == "const x = "


def test_fim_off_prompts_with_the_prefix_alone_even_with_fim_tokens(fim_tokenizer: Any) -> None:
    p = build_prompt(fim_tokenizer, "const x = ", " + 1;", 256, fim=False)
    assert not p.fim and p.suffix == "" and not p.suffix_ids
    assert not set(p.input_ids) & set(fim_ids(fim_tokenizer) or ())
    assert fim_tokenizer.decode(p.input_ids) == "const x = "


def test_special_token_text_in_the_file_stays_text(fim_tokenizer: Any) -> None:
    prefix = "const s = '<|endoftext|><fim_middle>'; "
    p = build_prompt(fim_tokenizer, prefix, "", 256)
    specials = set(fim_ids(fim_tokenizer) or ()) | {fim_tokenizer.eos_token_id}
    assert [t for t in p.input_ids if t in specials] == [p.input_ids[0], p.input_ids[1], p.input_ids[-1]]


@pytest.mark.parametrize("budget", [64, 200, 768])
def test_budget_and_suffix_share(fim_tokenizer: Any, budget: int) -> None:
    p = build_prompt(fim_tokenizer, BODY, SUFFIX, budget)
    assert p.prompt_tokens <= budget
    pre = p.input_ids.index(fim_ids(fim_tokenizer)[0])  # type: ignore[index]
    suffix_tokens = pre - 1
    assert 0 < suffix_tokens <= budget * SUFFIX_SHARE
    assert BODY.endswith(p.prefix) and SUFFIX.startswith(p.suffix)
    # the prefix is cut on the left, at a line start (its token may begin with the line break)
    assert len(p.prefix) < len(BODY)
    assert p.prefix.startswith("\n") or BODY[len(BODY) - len(p.prefix) - 1] == "\n"
    # and uses most of the budget (coarse steps waste more of a tiny one)
    assert p.prompt_tokens >= budget * (0.6 if budget >= 200 else 0.4)
    # the suffix is cut at a line end
    assert p.suffix.endswith("\n")


def test_no_fim_budget(plain_tokenizer: Any) -> None:
    p = build_prompt(plain_tokenizer, BODY, SUFFIX, 128)
    assert p.prompt_tokens <= 128 and BODY.endswith(p.prefix)
    assert plain_tokenizer.decode(p.input_ids) == p.prefix


def test_typing_keeps_the_window_start_so_the_kv_cache_stays_valid(fim_tokenizer: Any) -> None:
    """The property the engine's KV reuse depends on: one typed character changes only the
    last few tokens of the prompt, even though the prefix is far over budget."""
    typed = "const total = items.reduce((acc, x) => acc + x, 0);\nreturn total;"
    prompts = [build_prompt(fim_tokenizer, BODY + typed[:j], SUFFIX, 256) for j in range(len(typed) + 1)]
    assert all(p.prompt_tokens <= 256 for p in prompts)
    assert all(len(p.prefix) < len(BODY) for p in prompts)  # truncation is in effect
    starts = [len(BODY) + j - len(p.prefix) for j, p in enumerate(prompts)]
    moves = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert moves <= 1, "the window start should move in coarse steps, not per keystroke"
    kept = 0
    for a, b, sa, sb in zip(prompts, prompts[1:], starts, starts[1:], strict=False):
        if sa != sb:
            continue
        kept += 1
        shared = common_prefix(a.input_ids, b.input_ids)
        # everything but the last token or two of the prefix (+ <fim_middle>) is shared
        assert shared >= len(a.input_ids) - 3, (a.prefix[-20:], b.prefix[-20:])
    assert kept >= len(typed) - 1


def test_huge_prefix_is_cheap_and_bounded(fim_tokenizer: Any) -> None:
    huge = BODY * 200  # ~1.6 MB
    p = build_prompt(fim_tokenizer, huge, SUFFIX * 100, 300)
    assert p.prompt_tokens <= 300 and huge.endswith(p.prefix)


def test_single_enormous_line(fim_tokenizer: Any) -> None:
    line = "x=" + "a+" * 100_000
    p = build_prompt(fim_tokenizer, line, ")" * 50_000, 128)
    assert p.prompt_tokens <= 128 and line.endswith(p.prefix) and p.prefix


@pytest.mark.parametrize(("prefix", "suffix"), [("", ""), ("", "x"), ("x", ""), ("😀" * 300, "😀" * 300)])
def test_edge_inputs(fim_tokenizer: Any, prefix: str, suffix: str) -> None:
    p = build_prompt(fim_tokenizer, prefix, suffix, 64)
    assert 3 <= p.prompt_tokens <= 64
    assert prefix.endswith(p.prefix) and suffix.startswith(p.suffix)


@pytest.mark.parametrize("suffix", ["", "\nconst x = 1;\n"])
def test_an_empty_prefix_without_fim_is_the_start_of_a_text(fim_tokenizer: Any, plain_tokenizer: Any, suffix: str) -> None:
    """A new file, or line 0 above text: the prompt is the token that starts a text (EOS here:
    the tiny models, like GPT-2, train on files joined by EOS), never an empty prompt."""
    for tokenizer, fim in ((plain_tokenizer, True), (fim_tokenizer, False)):
        p = build_prompt(tokenizer, "", suffix, 64, heal=True, fim=fim)
        assert p.input_ids == [tokenizer.eos_token_id] and p.prompt_tokens == 1
        assert not p.fim and p.prefix == "" and p.heal == ""


def test_start_ids_without_bos_or_eos_is_empty(plain_tokenizer: Any) -> None:
    class NoSpecials:
        bos_token_id = None
        eos_token_id = None

    assert start_ids(NoSpecials()) == []
    assert start_ids(plain_tokenizer) == [plain_tokenizer.eos_token_id]


# ----------------------------------------------------------------------------------------------
# token healing


@pytest.mark.parametrize(
    ("prefix", "word"),
    [("const total = items.red", "red"), ("let radio = c", "c"), ("const q = zqxItemsCount", "zqxItemsCount"),
     ("for (let i = 0; i <", ""), ("foo(\n  ", "")],
)
def test_heal_leaves_the_word_being_typed_out_of_the_prompt(fim_tokenizer: Any, prefix: str, word: str) -> None:
    plain = build_prompt(fim_tokenizer, prefix, SUFFIX, 256)
    healed = build_prompt(fim_tokenizer, prefix, SUFFIX, 256, heal=True)
    assert plain.heal == ""
    dropped = len(plain.input_ids) - len(healed.input_ids)
    # the healed prompt is the plain one minus its last prefix tokens, which spell `heal`
    assert dropped >= 1
    assert healed.input_ids == plain.input_ids[: -1 - dropped] + plain.input_ids[-1:]
    assert fim_tokenizer.decode(plain.input_ids[-1 - dropped : -1]) == healed.heal
    assert prefix.endswith(healed.heal) and healed.prefix == prefix
    if word:  # every token of the word, from the one holding its first character
        assert healed.heal.endswith(word) and len(healed.heal) <= len(word) + 1
        start = len(prefix) - len(healed.heal)
        assert fim_tokenizer.decode(fim_tokenizer(prefix[:start])["input_ids"]) == prefix[:start]
    else:  # after punctuation or a line break: the last token only
        assert dropped == 1


def test_a_word_split_into_several_tokens_is_healed_whole(fim_tokenizer: Any) -> None:
    prefix = "const q = zqxItemsCount"
    ids = fim_tokenizer(prefix, add_special_tokens=False)["input_ids"]
    word_tokens = [i for i in ids if fim_tokenizer.decode([i]).strip() and fim_tokenizer.decode([i]).strip() in "zqxItemsCount"]
    assert len(word_tokens) >= 2  # the tiny tokenizer does not know this word
    healed = build_prompt(fim_tokenizer, prefix, "", 256, heal=True)
    assert healed.heal in {"zqxItemsCount", " zqxItemsCount"}


def test_heal_without_fim_keeps_at_least_one_token(plain_tokenizer: Any) -> None:
    healed = build_prompt(plain_tokenizer, "const x = ite", "", 256, heal=True)
    assert healed.heal and plain_tokenizer.decode(healed.input_ids) + healed.heal == "const x = ite"
    one = plain_tokenizer.convert_ids_to_tokens(plain_tokenizer("const", add_special_tokens=False)["input_ids"])
    assert len(one) == 1  # a one-token prefix: healing it would leave no prompt at all
    assert build_prompt(plain_tokenizer, "const", "", 256, heal=True).heal == ""


@pytest.mark.parametrize("prefix", ["const s = 'é", "x = '😀", ""])
def test_heal_skips_non_ascii_and_empty_tails(fim_tokenizer: Any, prefix: str) -> None:
    healed = build_prompt(fim_tokenizer, prefix, "", 256, heal=True)
    assert healed.heal == ""
    assert healed.input_ids == build_prompt(fim_tokenizer, prefix, "", 256).input_ids


def test_heal_skips_tails_longer_than_a_word(fim_tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from server import prompt

    tail = build_prompt(fim_tokenizer, "let radio = c", "", 256, heal=True).heal
    monkeypatch.setattr(prompt, "MAX_HEAL_CHARS", len(tail) - 1)
    assert build_prompt(fim_tokenizer, "let radio = c", "", 256, heal=True).heal == ""


@pytest.mark.parametrize("prefix", ["function f() {\n    ", "if (a) {\n\t\t", "foo(a, ", "x = [1,  "])
def test_a_cursor_after_whitespace_is_prompted_as_if_a_word_followed(fim_tokenizer: Any, prefix: str) -> None:
    # Byte-level BPE gives `\n   ` + ` return`: the prompt must end with the tokens a word would
    # follow, not with the run's own last token (one the model never saw before a word).
    healed = build_prompt(fim_tokenizer, prefix, SUFFIX, 256, heal=True)
    pre = healed.input_ids.index(fim_ids(fim_tokenizer)[0])  # type: ignore[index]
    prompt_prefix = healed.input_ids[pre + 1 : -1]
    as_if_a_word = fim_tokenizer(prefix + "x", add_special_tokens=False)["input_ids"]
    assert prompt_prefix == as_if_a_word[:-1]
    assert fim_tokenizer.decode(prompt_prefix) + healed.heal == prefix
    assert healed.heal in {"", " "}


@pytest.mark.parametrize(
    "prefix", ["a});\n\n        ", "foo(a, ", "x;\n\t", "x = 1;\n", "let radio = c", "const v = items.fo", "if (a) {\n  "]
)
def test_natural_tail_ids_split_the_text_as_running_text_does(fim_tokenizer: Any, prefix: str) -> None:
    # What the ∞-gram query is made of: the text before the completion, split as the indexed files
    # (tokenized whole) split it, so that a lookup can match across the prompt's seams.
    heal = build_prompt(fim_tokenizer, prefix, "", 256, heal=True).heal
    ids = natural_tail_ids(fim_tokenizer, prefix, heal, 10_000)
    running = fim_tokenizer(prefix + "x", add_special_tokens=False)["input_ids"]
    assert ids == running[: len(ids)]
    assert fim_tokenizer.decode(ids) == prefix[: len(prefix) - len(heal)]
    short = natural_tail_ids(fim_tokenizer, prefix, heal, 8)
    assert fim_tokenizer.decode(ids).endswith(fim_tokenizer.decode(short))
    assert len(fim_tokenizer.decode(short)) < 8 or len(prefix) <= 8
