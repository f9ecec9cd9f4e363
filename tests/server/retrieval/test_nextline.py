"""server.retrieval.nextline: the line that followed lines like the one above a blank cursor line."""

from __future__ import annotations

from collections import Counter

import pytest

from server.retrieval.index import WorkspaceIndex
from server.retrieval.nextline import (
    MAX_VOTES,
    WORD_IDS,
    NextLines,
    best_of,
    follow_in,
    line_pairs,
    similarity,
    words,
)

CONFIG = "module.exports = {\n  'no-console': 'warn',\n\n  'no-process-exit': 'error',\n  'no-proto': 'error',\n};\n"


def encode(texts: list[str]) -> list[list[int]]:
    return [[ord(c) % 256 for c in t] for t in texts]


def brute_follow(line: str, docs: dict[str, str], exclude: str = "") -> tuple[float, Counter[str]]:
    """Reference: every line pair of every document, scored with Python sets."""
    query = words(line)
    scored = [(similarity(query, words(a)), b) for k, t in docs.items() if k != exclude
              for a, b in line_pairs(t.split("\n"))]
    best = max((s for s, _ in scored), default=0.0)
    return best, Counter(b for s, b in scored if best > 0 and s >= best - 1e-9)


def test_line_pairs_skip_blank_lines_and_strip_the_follower() -> None:
    assert line_pairs(CONFIG.split("\n")) == [
        ("module.exports = {", "'no-console': 'warn',"),
        ("  'no-console': 'warn',", "'no-process-exit': 'error',"),
        ("  'no-process-exit': 'error',", "'no-proto': 'error',"),
        ("  'no-proto': 'error',", "};"),
    ]


def test_follow_agrees_with_a_brute_force_scan_and_keeps_up_with_edits() -> None:
    docs = {
        "a.js": CONFIG,
        "b.js": "const TEEN_AGE_MIN = 13\nconst TEEN_AGE_MAX = 19\nconst ADULT_AGE_MIN = 18\nconst ADULT_AGE_MAX = 64\n",
        "c.js": "if (err) {\n  return cb(err);\n}\nif (err) {\n  throw err;\n}\n",
        "d.js": "",
    }
    index = NextLines()
    for key, text in docs.items():
        index.set(key, text)
    queries = ["const CHILD_AGE_MIN = 2", "  'no-debugger': 'error',", "if (err) {", "nothing alike here", "}"]
    for query in queries:
        for exclude in ("", "b.js", "c.js"):
            assert index.follow(query, exclude) == pytest.approx(brute_follow(query, docs, exclude)), (query, exclude)
    # Digits are words one by one: {const, TEEN_AGE_MIN, =, 1, 4} against {…, 1, 3}: 4 of 6.
    assert index.follow("const TEEN_AGE_MIN = 14") == (pytest.approx(2 / 3), Counter({"const TEEN_AGE_MAX = 19": 1}))
    # Ties all vote: the first three lines share `const`, `=` and one digit with it.
    assert index.follow("const CHILD_AGE_MIN = 2")[1] == Counter(
        {"const TEEN_AGE_MAX = 19": 1, "const ADULT_AGE_MIN = 18": 1, "const ADULT_AGE_MAX = 64": 1}
    )
    assert index.follow("if (err) {")[1] == Counter({"return cb(err);": 1, "throw err;": 1})  # not unanimous
    docs["c.js"] = "if (err) {\n  throw err;\n}\n"
    index.set("c.js", docs["c.js"])
    assert index.follow("if (err) {") == (1.0, Counter({"throw err;": 1}))
    index.remove("c.js")
    assert index.follow("if (err) {")[0] < 1.0
    assert index.follow("") == (0.0, Counter())


def test_words_are_16_bit_hashes_without_a_vocabulary() -> None:
    assert words("const a = a.b(1)") == words("const a=a.b(1);") - words(";")
    assert len(words("const a = a.b(1)")) == 8 and all(0 <= w < WORD_IDS for w in words("x y z"))
    # `name1623` and `name8000` share a hash: a line's distinct words are counted after hashing,
    # and the index and the reference agree on it.
    assert words("name1623") == words("name8000") and len(words("name1623 name8000 x")) == 2
    docs = {"a.js": "let name1623 = name8000 + x\nuse(name1623)\nlet q = 1\nfoo()\n"}
    index = NextLines()
    index.set("a.js", docs["a.js"])
    for query in ("let name1623 = x", "let name1623 = name8000 + x", "let q = 2"):
        assert index.follow(query) == pytest.approx(brute_follow(query, docs))
    assert index.follow("let name1623 = name8000 + x") == (1.0, Counter({"use(name1623)": 1}))
    # 5 + 4 + 4 words (uint16) of the three lines that have a follower, their sizes, 4 line
    # starts, and the document's distinct words.
    assert index.nbytes == 2 * 13 + 2 * 3 + 4 * 4 + 2 * len(words(docs["a.js"]))


def test_at_most_max_votes_best_lines_vote() -> None:
    index = NextLines()
    index.set("a.js", "}\nfoo();\n" * (MAX_VOTES + 10) + "}\nbar();\n")
    score, votes = index.follow("}")
    assert score == 1.0 and votes == Counter({"foo();": MAX_VOTES})


def test_follow_in_and_best_of_merge_the_file_with_the_workspace() -> None:
    lines = CONFIG.split("\n")
    assert follow_in("  'no-proto': 'error',", lines) == (1.0, Counter({"};": 1}))
    merged = best_of((0.5, Counter({"a": 1})), (0.9, Counter({"b": 2})), (0.9, Counter({"c": 1})), (0.0, Counter()))
    assert merged == (0.9, Counter({"b": 2, "c": 1}))
    assert best_of() == (0.0, Counter())


def test_the_workspace_index_keeps_its_lines_current() -> None:
    index = WorkspaceIndex(encode, 256)
    index.build([("a.js", CONFIG), ("b.js", "let x = 1;\nlet y = 2;\n")])
    assert index.follow("  'no-process-exit': 'error',", exclude="b.js")[1] == Counter({"'no-proto': 'error',": 1})
    index.update("a.js", "  'no-process-exit': 'error',\n  'no-restricted-syntax': 'off',\n")
    assert index.follow("  'no-process-exit': 'error',")[1] == Counter({"'no-restricted-syntax': 'off',": 1})
    index.remove("a.js")
    assert index.follow("  'no-process-exit': 'error',")[0] < 0.5
    assert index.follow("let x = 1;", exclude="b.js")[0] == 0.0
    assert index.nbytes > 0


def test_a_typescript_next_line_is_no_vote_in_javascript() -> None:
    from server.retrieval.rules import CopyRules

    index = WorkspaceIndex(encode, 256)
    dts = "export const VERSION = '1.0';\nexport type Headers = Partial<Record<string, string>>;\n"
    js = "export const VERSION = '1.0';\nexport default VERSION;\n"
    index.build([("file:///p/index.d.ts", dts)])
    rules = CopyRules.at("file:///p/lib/a.js", "export const VERSION = '2.0';\n")

    def admit(line: str, key: str, text: str, start: int) -> bool:
        return rules.admits(line, 100, text, start, key)

    query = "export const VERSION = '2.0';"
    assert index.follow(query)[1] == Counter({"export type Headers = Partial<Record<string, string>>;": 1})
    assert index.follow(query, admit=admit)[1] == Counter()
    index.update("file:///p/lib/b.js", js)  # the JavaScript twin votes; the declaration still does not
    assert index.follow(query, admit=admit)[1] == Counter({"export default VERSION;": 1})
