"""Completer: the shared pipeline (context → cache → prompt → generate → postprocess) end to end.

A random tiny model mostly emits loops that the post-processing rightly drops, so the tests
that need a visible completion use the tiny model with its final layer norm edited to always
predict one token (" items"): a real transformers model run through the real pipeline, whose
output we know.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from server import lookups
from server.cache import CompletionCache
from server.completion import Completer, cache_entry
from server.engines.pytorch import TorchEngine
from server.postprocess import postprocess
from server.retrieval.mixing import MixParams
from server.settings import Settings
from server.stats import Stats

STEER_TOKEN = "Ġitems"  # byte-level BPE spelling of " items"


def steer(src: Path, out: Path, token: str) -> Path:
    """Copy a model dir, making `token` the greedy choice after any input."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, use_safetensors=True)
    target = tok.convert_tokens_to_ids(token)
    with torch.no_grad():
        wte = model.get_input_embeddings().weight  # tied with the LM head
        wte[target] *= 50
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(wte[target])
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def steered_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return steer(tiny_model_dir, tmp_path_factory.mktemp("steered"), STEER_TOKEN)


@pytest.fixture(scope="module")
def settings(steered_dir: Path) -> Settings:
    return Settings(model=str(steered_dir), device="cpu", max_new_tokens=4, max_prompt_tokens=256)


@pytest.fixture(scope="module")
def engine(settings: Settings) -> TorchEngine:
    eng = TorchEngine(settings)
    eng.load()
    return eng


@pytest.fixture
def completer(engine: TorchEngine) -> Completer:
    engine.reset_cache()
    return Completer(engine, cache=CompletionCache(64), stats=Stats())


CODE = "const items = [1, 2, 3];\nfor (let i = 0; i < items.length; i++) {\n  console.log(items[i]);\n}\nconst x ="


def test_completes_code_and_records_every_stage(completer: Completer, settings: Settings) -> None:
    outcome = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js")
    assert outcome.result is not None and not outcome.cache_hit
    assert outcome.result.text == " items" * 4
    assert outcome.text == " items items items items"
    assert outcome.text == postprocess(outcome.result.text, CODE, "", outcome.multiline)
    assert not outcome.multiline
    snap = completer.stats.snapshot()
    assert snap["requests"] == 1 and snap["cache_hits"] == 0
    # token healing: the prompt stops before CODE's last token " =", which the model re-spells
    # first (one forced token that max_new_tokens does not count)
    assert completer.engine.tokenizer.decode(outcome.result.token_ids[:1]) == " ="
    assert snap["last"]["new_tokens"] == 5
    assert snap["last"]["prompt_tokens"] == outcome.result.prompt_tokens
    assert {"context", "cache", "prompt", "generate", "postprocess", "total"} <= set(snap["stages_ms"])


def test_no_completion_inside_a_comment(completer: Completer, settings: Settings) -> None:
    text = "const a = 1;\n// compute the sum of an arr"
    outcome = completer.complete(text, len(text), settings=settings, key="file:///c.js")
    assert outcome.text == "" and outcome.result is None and "comment" in outcome.reason
    assert "generate" not in completer.stats.snapshot()["stages_ms"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a licence header written out once already: its next line, in a comment
            "/*\n * Copyright (c) Zorble Industries <zorble@example.com>\n */\nconst a = 1;\n"
            "/*\n * Copyright (c) Zorble Indu",
            "stries <zorble@example.com>",
        ),
        (  # a message repeated in a plain string (not a call argument: the model is not asked)
            "const first = { text: 'hello zorble world, again' };\nconst second = { text: 'hello zorble",
            " world, again' };",
        ),
    ],
)
def test_sure_copies_are_offered_in_strings_and_comments(
    completer: Completer, settings: Settings, text: str, expected: str
) -> None:
    text += "\n */\n" if text.startswith("/*") else ""  # the comment is closed below the cursor
    offset = text.rfind("\n */\n") if text.endswith(" */\n") else len(text)
    text, after = text[:offset], text[offset:]
    outcome = completer.complete(text + after, offset, settings=settings, key="file:///copy.js")
    assert outcome.text == expected and outcome.result is None
    assert outcome.reason.startswith("copied (inside a")
    assert "generate" not in completer.stats.snapshot()["stages_ms"]
    typed = text + expected[:3]
    again = completer.complete(typed + after, len(typed), settings=settings, key="file:///copy.js")
    assert again.cache_hit and again.text == expected[3:]  # typed ahead
    off = Settings(**{**settings.__dict__, "workspace_index": "off"})
    assert completer.complete(text + after, offset, settings=off, key="file:///other.js").text == ""
    # Without anything to copy, nothing is offered there, as before.
    lone = text[: text.rfind("\n") + 1] + "// nothing like this anywhere"
    assert completer.complete(lone, len(lone), settings=settings, key="file:///lone.js").text == ""


ANALOGY = (
    "test('ok', async () => {\n  const result = await get('/ok');\n  expect(result.status).toBe(200);\n"
    "  expect(result.body).toEqual(expected);\n});\n"
    "test('created', async () => {\n  const result = await post('/new');\n  expect(result.status).toBe(201);\n  "
)


def test_a_blank_line_gets_the_line_that_followed_a_similar_line(completer: Completer, settings: Settings) -> None:
    # `expect(result.status).toBe(201);` is 10 words of 11 like the 200 line above (no long
    # character-level copy: `201);` occurs nowhere else); what followed that line is proposed.
    outcome = completer.complete(ANALOGY + "\n});\n", len(ANALOGY), settings=settings, key="file:///t.js")
    assert outcome.text == "expect(result.body).toEqual(expected);" and outcome.result is None
    assert outcome.reason.startswith("next line after a similar one")
    assert completer.stats.snapshot()["next_line"] == 1
    # Followed differently elsewhere: no single answer, so the model is asked (it says " items").
    split = ANALOGY.replace("\n});\ntest('created'", "\n  done();\n});\ntest('again', async () => {\n"
                            "  const result = await get('/ok');\n  expect(result.status).toBe(200);\n"
                            "  expect(result.headers).toBeDefined();\n});\ntest('created'")
    other = completer.complete(split + "\n});\n", len(split), settings=settings, key="file:///u.js")
    assert not other.reason.startswith("next line") and other.result is not None
    # Only on a blank line, and only with the workspace index on.
    typed = ANALOGY + "exp"
    assert not completer.complete(typed + "\n});\n", len(typed), settings=settings, key="file:///v.js").reason.startswith("next")
    off = Settings(**{**settings.__dict__, "workspace_index": "off"})
    assert completer.complete(ANALOGY + "\n});\n", len(ANALOGY), settings=off, key="file:///w.js").result is not None


def test_the_analogy_reads_only_the_nearest_lines_of_the_file(
    completer: Completer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The similar line (the 200 one) is the 6th line above the cursor line: inside a window of 6
    # lines, outside one of 5, and then the model is asked instead.
    monkeypatch.setattr(lookups, "NEXT_LINE_OWN_LINES", 6)
    near = completer.complete(ANALOGY + "\n});\n", len(ANALOGY), settings=settings, key="file:///near.js")
    assert near.reason.startswith("next line after a similar one")
    monkeypatch.setattr(lookups, "NEXT_LINE_OWN_LINES", 5)
    far = completer.complete(ANALOGY + "\n});\n", len(ANALOGY), settings=settings, key="file:///far.js")
    assert not far.reason.startswith("next line") and far.result is not None


def test_repeat_request_is_a_cache_hit(completer: Completer, settings: Settings) -> None:
    first = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js")
    again = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js")
    assert again.cache_hit and again.result is None and again.text == first.text
    other_doc = completer.complete(CODE, len(CODE), settings=settings, key="file:///b.js")
    assert not other_doc.cache_hit
    assert completer.stats.snapshot()["cache_hits"] == 1


def test_typing_the_shown_completion_is_answered_from_cache(completer: Completer, settings: Settings) -> None:
    shown = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js").text
    typed = CODE + shown[:3]  # the user types " it"
    outcome = completer.complete(typed, len(typed), settings=settings, key="file:///a.js")
    assert outcome.cache_hit and outcome.result is None
    assert outcome.text == shown[3:]


def test_typing_something_else_reuses_the_kv_cache(completer: Completer, settings: Settings) -> None:
    first = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js")
    typed = CODE + " 4"
    outcome = completer.complete(typed, len(typed), settings=settings, key="file:///a.js")
    assert first.result is not None and outcome.result is not None and not outcome.cache_hit
    assert outcome.result.prompt_tokens_computed <= 4 < first.result.prompt_tokens_computed
    assert outcome.result.prompt_tokens > 20
    assert (
        completer.stats.snapshot()["last"]["prompt_tokens_computed"] == outcome.result.prompt_tokens_computed
    )


def test_empty_block_body_is_multiline(completer: Completer, settings: Settings) -> None:
    text = "function f() {\n  \n}\n"
    offset = text.index("\n  \n") + 3
    outcome = completer.complete(text, offset, settings=settings, key="file:///m.js")
    assert outcome.multiline and outcome.result is not None


def test_cancelled_request_is_counted_and_not_cached(completer: Completer, settings: Settings) -> None:
    cancel = threading.Event()
    cancel.set()
    outcome = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js", cancel=cancel)
    assert outcome.text == "" and outcome.reason == "cancelled"
    assert outcome.result is not None and outcome.result.cancelled
    assert completer.stats.snapshot()["cancelled"] == 1
    later = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js")
    assert not later.cache_hit and later.text


def test_settings_that_shape_output_do_not_share_cache(completer: Completer, settings: Settings) -> None:
    short = completer.complete(CODE, len(CODE), settings=settings, key="file:///a.js")
    import dataclasses

    longer_settings = dataclasses.replace(settings, max_new_tokens=5)
    longer = completer.complete(CODE, len(CODE), settings=longer_settings, key="file:///a.js")
    assert not longer.cache_hit
    assert len(longer.text) > len(short.text)


def test_prefix_only_model_completes(tiny_model_dir_no_fim: Path, tmp_path: Path) -> None:
    steered = steer(tiny_model_dir_no_fim, tmp_path / "nofim", STEER_TOKEN)
    settings = Settings(model=str(steered), device="cpu", max_new_tokens=3)
    completer = Completer(TorchEngine(settings))  # no cache, default stats; loads lazily
    outcome = completer.complete(CODE, len(CODE), settings=settings)
    assert outcome.text == " items items items"
    assert outcome.result is not None
    # the whole prefix but its last token, which healing leaves for the model to re-spell
    assert outcome.result.prompt_tokens == len(completer.engine.tokenizer(CODE)["input_ids"]) - 1


def test_token_healing_completes_words_cut_mid_token(trained_dir: Path) -> None:
    """The cursor inside a word: the model trained on these samples finishes the line far more
    often when the prompt stops before the partial token (healing) than when it ends with it."""
    from tiny_model import JS_SAMPLES

    settings = Settings(model=str(trained_dir), device="cpu", max_new_tokens=24, multiline="never")
    engine = TorchEngine(settings)
    engine.load()
    cuts = [
        (text, off)
        for text in JS_SAMPLES
        for off in range(1, len(text))
        if text[off - 1].isalnum() and text[off].isalnum()
    ][::3]
    exact = {True: 0, False: 0}
    for healing in (True, False):
        completer = Completer(engine, token_healing=healing)
        for text, off in cuts:
            eol = text.index("\n", off)
            doc = text[:off] + text[eol:]  # the rest of the cursor line is what we ask for
            out = completer.complete(doc, off, settings=settings, key=f"heal-{healing}")
            exact[healing] += out.text.strip() == text[off:eol].strip()
    assert exact[True] >= 0.15 * len(cuts), exact
    assert exact[True] >= 5 * (exact[False] + 1), exact


def test_typing_a_shown_completion_that_opens_a_string_keeps_its_rest(
    completer: Completer, settings: Settings
) -> None:
    """`const name =` was completed with `'fs';`: typing its quote puts the cursor in a string,
    where no new completion starts, but the rest of the shown one is still what the user types."""
    assert completer.cache is not None
    text = "const name = "
    stored = cache_entry("file:///q.js", settings, multiline=False)  # as the Completer stores it
    completer.cache.put(stored, text, "", "'fs';")
    typed = text + "'"
    outcome = completer.complete(typed, len(typed), settings=settings, key="file:///q.js")
    assert outcome.cache_hit and outcome.text == "fs';"
    fresh = completer.complete(typed, len(typed), settings=settings, key="file:///other.js")
    assert fresh.text == "" and "string" in fresh.reason  # nothing shown there: nothing started


def test_string_argument_completes(engine: TorchEngine, settings: Settings) -> None:
    completer = Completer(engine, token_healing=False)  # healing would re-spell "removes" first
    text = "describe('items', () => {\n  it('adds', () => {});\n  it('removes"
    outcome = completer.complete(text + "');", len(text), settings=settings, key="file:///s.js")
    assert "string argument" in outcome.reason
    assert outcome.text == " items items items items"  # the steered model's text, inside the string


def test_string_argument_generation_stops_at_an_auto_closed_quote_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    quoting = Settings(
        model=str(steer(tiny_model_dir, tmp_path / "quote", "'")), device="cpu", max_new_tokens=8,
        max_prompt_tokens=256,
    )
    engine = TorchEngine(quoting)
    engine.load()
    completer = Completer(engine, token_healing=False)
    text = "const fs = require('./li"
    closed = completer.complete(text + "');", len(text), settings=quoting, key="a")
    assert closed.text == "" and closed.result is not None and closed.result.new_tokens == 1
    unclosed = completer.complete(text, len(text), settings=quoting, key="b")
    # Not auto-closed: the string's end is not the completion's, the line goes on after it.
    assert unclosed.text.startswith("'") and unclosed.result is not None and unclosed.result.new_tokens > 1


def test_copies_from_far_above_the_prompt_window(engine: TorchEngine, settings: Settings) -> None:
    # The first definition is thousands of tokens above the cursor, far outside the 256-token
    # prompt: only the search over the whole current document can supply its body. The steered
    # model alone would say " items".
    head = "function zorbleTotals(order) {\n  return order.quantityOrdered * order.unitPriceCents;\n}\n"
    filler = "".join(f"const value{i} = {i};\n" for i in range(600))
    text = head + filler + "function zorbleTotals(order) {\n  return order."
    wide = Settings(**{**settings.__dict__, "max_new_tokens": 40})
    # A sure character-level copy answers at once, without the model.
    verdict = Completer(engine).complete(text, len(text), settings=wide)
    assert verdict.text == "quantityOrdered * order.unitPriceCents;" and verdict.reason.startswith("copied")
    # Token by token (the copy verdicts off) the model is steered to the same line.
    copier = Completer(engine, copy_verdicts=False)
    got = copier.complete(text, len(text), settings=wide).text
    assert got.startswith("quantityOrdered * order.unitPriceCents"), got
    snap = copier.stats.snapshot()  # the long copy went through drafts, and they were kept
    assert 0 < snap["draft_tokens_accepted"] <= snap["draft_tokens"]
    off = Settings(**{**wide.__dict__, "workspace_index": "off"})
    assert "quantityOrdered" not in Completer(engine).complete(text, len(text), settings=off).text


def test_fim_setting_chooses_the_prompt(engine: TorchEngine, settings: Settings) -> None:
    text = "const a = [1, 2];\nconst b = a.map((x) => x * 2);\n"
    cursor = text.index(" = a.map")
    results = {}
    for fim in ("auto", "off"):
        engine.reset_cache()
        chosen = Settings(**{**settings.__dict__, "fim": fim})
        outcome = Completer(engine, cache=CompletionCache(8)).complete(text, cursor, settings=chosen)
        assert outcome.result is not None
        results[fim] = outcome.result.prompt_tokens
    tokenizer = engine.tokenizer
    prefix_only = len(tokenizer(text[:cursor])["input_ids"])
    assert results["off"] <= prefix_only < results["auto"]  # "auto": the suffix and FIM tokens too


def test_the_cursor_line_does_not_answer_the_query_with_its_own_typed_word(engine: TorchEngine, settings: Settings) -> None:
    # Healing leaves `bet` out of the prompt and the ∞-gram query; the cursor line holds the query
    # followed by `bet`, and must not count as an occurrence (it would force `bet` token by token
    # instead of a longer token that starts with it).
    from server.prompt import build_prompt

    text = "const zz = 1;\nqqFrob(alphaValue, bet"
    prompt = build_prompt(engine.tokenizer, text, "", 256, heal=True)
    assert prompt.heal and text.endswith(prompt.heal)
    guide = Completer(engine).lookups.guide(engine, prompt, text, "", "file:///self.js", settings)
    assert guide is not None and guide.match([]).length == 0


def test_the_file_being_edited_wins_over_the_workspace_at_equal_match_length(engine: TorchEngine, settings: Settings) -> None:
    from server.retrieval.vocab import new_index

    call = "const total = computeZorbleSum("
    index = new_index(engine.tokenizer)
    index.build([(f"other{i}.js", f"{call}widgets, 3);\n") for i in range(3)])  # three times elsewhere
    text = f"{call}gadgets, 5);\n{call}"  # once in this file, after the same text
    wide = Settings(**{**settings.__dict__, "max_new_tokens": 24})
    completer = Completer(engine, index=index)
    assert completer.complete(text, len(text), settings=wide, key="this.js").text.startswith("gadgets, 5)")
    pooled = Completer(engine, index=index, mix=MixParams(own_file_slack=-1))  # 3 against 1
    assert pooled.complete(text, len(text), settings=wide, key="this.js").text.startswith("widgets, 3)")
