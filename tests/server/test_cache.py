"""Completion cache: exact hits, typed-ahead reuse, LRU eviction, thread safety."""

from __future__ import annotations

import threading

from server.cache import PREFIX_CHARS, CompletionCache


def test_exact_hit_and_miss() -> None:
    c = CompletionCache(8)
    c.put("doc", "const x = ", ";\n", "compute(1)")
    assert c.get("doc", "const x = ", ";\n") == "compute(1)"
    assert c.get("doc", "const y = ", ";\n") is None
    assert c.get("doc", "const x = ", ")\n") is None  # different suffix
    assert c.get("other", "const x = ", ";\n") is None  # different key (document/settings)


def test_empty_completion_is_cached_too() -> None:
    c = CompletionCache(8)
    c.put("k", "p", "s", "")
    assert c.get("k", "p", "s") == ""


def test_typed_ahead_returns_the_rest() -> None:
    c = CompletionCache(8)
    c.put("doc", "function add(a, b) {\n  ", "\n}", "return a + b;")
    prefix = "function add(a, b) {\n  "
    for typed in range(1, len("return a + b;")):
        assert c.get("doc", prefix + "return a + b;"[:typed], "\n}") == "return a + b;"[typed:]
    # fully typed: nothing left to suggest
    assert c.get("doc", prefix + "return a + b;", "\n}") is None


def test_typed_ahead_needs_matching_characters() -> None:
    c = CompletionCache(8)
    c.put("doc", "x = ", "", "compute()")
    assert c.get("doc", "x = cop", "") is None
    assert c.get("doc", "x = c", "") == "ompute()"
    assert c.get("doc", "y = c", "") is None


def test_typed_ahead_over_line_breaks_and_emoji() -> None:
    c = CompletionCache(8)
    c.put("doc", "if (ok) {", "\n}", "\n  send('😀');\n")
    assert c.get("doc", "if (ok) {\n  send('😀", "\n}") == "');\n"


def test_only_the_tail_of_long_prefixes_matters() -> None:
    c = CompletionCache(8)
    tail = "x" * PREFIX_CHARS
    c.put("doc", "A" * 10_000 + tail, "", "done")
    assert c.get("doc", "B" * 10 + tail, "") == "done"
    big = "y" * 5_000_000
    c.put("doc", big, "", "abc")
    assert c.get("doc", big + "a", "") == "bc"


def test_lru_eviction() -> None:
    c = CompletionCache(2)
    c.put("k", "a", "", "1")
    c.put("k", "b", "", "2")
    assert c.get("k", "a", "") == "1"  # refresh a
    c.put("k", "c", "", "3")  # evicts b, the least recently used
    assert c.get("k", "b", "") is None
    assert c.get("k", "a", "") == "1" and c.get("k", "c", "") == "3"
    assert len(c) == 2


def test_put_replaces() -> None:
    c = CompletionCache(4)
    c.put("k", "a", "", "old")
    c.put("k", "a", "", "new")
    assert c.get("k", "a", "") == "new" and len(c) == 1
    c.clear()
    assert len(c) == 0 and c.get("k", "a", "") is None


def test_concurrent_use() -> None:
    c = CompletionCache(64)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                c.put(f"k{n}", f"p{i}", "", f"v{i}x")
                got = c.get(f"k{n}", f"p{i}v", "")
                assert got in (f"{i}x", None)
        except BaseException as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(c) <= 64


def test_forget_drops_one_documents_entries_only() -> None:
    from server.completion import cache_entry
    from server.settings import Settings

    c = CompletionCache(16)
    settings = Settings()
    for uri in ("file:///a.js", "file:///a.jsx", "file:///b.js"):
        for multiline in (False, True):
            c.put(cache_entry(uri, settings, multiline), "const x = ", "", f"{uri} {multiline}")
    c.forget("file:///a.js")
    assert len(c) == 4
    assert c.get(cache_entry("file:///a.js", settings, False), "const x = ", "") is None
    assert c.get(cache_entry("file:///a.jsx", settings, True), "const x = ", "") == "file:///a.jsx True"
    assert c.get(cache_entry("file:///b.js", settings, False), "const x = ", "") == "file:///b.js False"
