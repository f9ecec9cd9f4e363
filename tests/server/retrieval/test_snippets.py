"""Similar-code snippets for the prompt: Jaccard-ranked windows, kept current, stable on a line."""

from __future__ import annotations

import numpy as np
import pytest

from server.engines.pytorch import TorchEngine
from server.retrieval.index import WorkspaceIndex
from server.retrieval.snippets import MIN_SCORE, WINDOW, SnippetIndex
from server.settings import Settings


def brute_jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def test_ranking_agrees_with_a_brute_force_jaccard() -> None:
    rng = np.random.default_rng(3)
    words = np.ones(40, dtype=bool)
    words[:5] = False  # "punctuation": never counted
    index = SnippetIndex(words)
    docs = {f"d{i}": rng.integers(0, 40, size=int(rng.integers(10, 300))).astype(np.int32) for i in range(8)}
    for key, ids in docs.items():
        index.set(key, ids)
    for _ in range(30):
        query = rng.integers(0, 40, size=20).astype(np.int32)
        q = {int(t) for t in query if words[t]}
        best = max(
            (brute_jaccard(q, {int(t) for t in ids[s : s + WINDOW] if words[t]}), key, s)
            for key, ids in docs.items()
            for s in range(0, max(1, len(ids) - 32), 32)
        )
        found = index.best(query, exclude="", k=1)
        if best[0] < MIN_SCORE:
            assert found == []
        else:
            assert found and found[0].score == pytest.approx(best[0])


def test_the_window_sharing_the_most_words_wins_and_updates_are_seen() -> None:
    words = np.ones(100, dtype=bool)
    index = SnippetIndex(words)
    index.set("a.js", np.arange(10, 30, dtype=np.int32))
    index.set("b.js", np.arange(50, 70, dtype=np.int32))
    query = np.arange(52, 60, dtype=np.int32)
    assert [s.key for s in index.best(query)] == ["b.js"]
    assert index.best(query, exclude="b.js") == []  # a.js shares nothing: below MIN_SCORE
    index.set("a.js", np.arange(50, 62, dtype=np.int32))  # an edit makes a.js the closer one
    assert index.best(query)[0].key == "a.js"
    index.remove("a.js")
    assert index.best(query)[0].key == "b.js"


HELPER = (
    "function formatUserName(user) {\n"
    "  const first = user.firstName.trim();\n"
    "  const last = user.lastName.trim();\n"
    "  return `${last}, ${first}`;\n"
    "}\n"
)
OTHER = "const express = require('express');\nconst app = express();\napp.listen(3000);\n"


def test_the_block_is_the_similar_file_labelled_and_stays_put_while_typing(engine: TorchEngine) -> None:
    from server.completion import Completer
    from server.retrieval.vocab import new_index

    index: WorkspaceIndex = new_index(engine.tokenizer, snippets=True)
    index.build([("lib/names.js", HELPER * 3), ("lib/server.js", OTHER * 3)])
    completer = Completer(engine, index=index, snippet_tokens=96)
    settings = Settings(model="x", workspace_index="on")
    above = "function formatAuthor(user) {\n  const first = user.firstName.trim();\n  const last = user.lastName.trim();\n"
    block = completer.lookups.snippet_block(engine, above + "  return `${", "main.js", settings, 400)
    text = engine.tokenizer.decode(block)
    assert text.startswith("// lib/names.js\n") and "user.lastName" in text and "express" not in text
    assert len(block) <= 96
    # Typing on the cursor line does not move the block (nor the KV cache behind it).
    assert completer.lookups.snippet_block(engine, above + "  return `${last", "main.js", settings, 400) == block
    assert completer.lookups.snippet_block(engine, above + "  return `${last}", "main.js", settings, 400) == block
    # Off, or no workspace: no block.
    assert completer.lookups.snippet_block(engine, above, "main.js", Settings(workspace_index="off"), 400) == []
    assert Completer(engine, index=index).lookups.snippet_block(engine, above, "main.js", settings, 400) == []


def test_a_completion_with_a_snippet_reuses_the_kv_cache_across_keystrokes(engine: TorchEngine) -> None:
    from server.completion import Completer
    from server.retrieval.vocab import new_index

    index = new_index(engine.tokenizer, snippets=True)
    index.build([("lib/names.js", HELPER * 3)])
    # Copy verdicts off: this line is in the helper, and a sure copy would skip the model.
    completer = Completer(engine, index=index, snippet_tokens=96, copy_verdicts=False)
    settings = Settings(model="x", max_new_tokens=8)
    text = "function formatAuthor(user) {\n  const first = user.firstName.trim();\n  const last = user."
    first = completer.complete(text, len(text), settings=settings, key="kv.js")
    second = completer.complete(text + "l", len(text) + 1, settings=settings, key="kv.js")
    assert first.result is not None and second.result is not None
    assert first.result.prompt_tokens > len(engine.tokenizer(text)["input_ids"])  # the block is in
    assert second.result.prompt_tokens_computed < 8  # only the typed end was computed again
