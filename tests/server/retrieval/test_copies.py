"""Character-level copying: the longest earlier tail of the text, and when the Completer trusts it."""

from __future__ import annotations

import random

from server.engines.pytorch import TorchEngine
from server.retrieval.copies import COPY_MAX_TAIL, SURE_MIN_CHARS, copy_prediction, copy_verdict, own_sources
from server.retrieval.index import WorkspaceIndex
from server.retrieval.nextline import bounded_words, word_id
from server.settings import Settings


def brute(prefix: str, sources: list[str]) -> tuple[int, dict[str, int]]:
    """Reference: try every tail length from the longest down."""
    for n in range(min(len(prefix), 400), 0, -1):
        tail = prefix[-n:]
        rests: dict[str, int] = {}
        for text in sources:
            start = text.find(tail)
            while start >= 0:
                if start + n < len(text):  # an occurrence that ends the text is no vote
                    rest = text[start + n :].split("\n", 1)[0]
                    rests[rest] = rests.get(rest, 0) + 1
                start = text.find(tail, start + 1)
        if rests:
            return n, rests
    return 0, {}


def test_the_galloping_search_finds_what_a_scan_of_every_length_finds() -> None:
    rng = random.Random(7)
    for _ in range(300):
        sources = ["".join(rng.choice("ab\n") for _ in range(rng.randint(0, 60))) for _ in range(3)]
        prefix = "".join(rng.choice("ab\n") for _ in range(rng.randint(1, 40)))
        verdict = copy_verdict(prefix, sources)
        length, rests = brute(prefix, sources)
        assert verdict.length == length
        if length:
            assert verdict.votes == max(rests.values()) and verdict.text in rests
            assert verdict.occurrences == min(64, sum(rests.values()))


def test_a_sure_verdict_is_long_and_unanimous() -> None:
    other = "const user = load();\nlist.push(fullName);\nlist.push(fullName);\n"
    sure = copy_verdict("  list.push(ful", [other])
    assert (sure.text, sure.sure) == ("lName);", True) and sure.length >= SURE_MIN_CHARS
    split = copy_verdict("list.push(", [other + "list.push(x);\n"])
    assert split.text == "fullName);" and split.votes == 2 and split.occurrences == 3 and not split.sure
    short = copy_verdict("(ful", [other])  # 4 characters: not enough to trust
    assert short.text == "lName);" and not short.sure
    assert copy_verdict("zzz", [other], at_least=SURE_MIN_CHARS).occurrences == 0


def test_an_occurrence_that_ends_another_text_is_no_vote() -> None:
    # Another open document whose unfinished line is the same text: it neither blocks the verdict
    # nor makes the match longer; the helper file decides.
    helper = "export const result = zorbleQuantifyWidgets(config, 3);\n"
    other_caller = "import x from './x.js';\nexport const total = zorble"
    verdict = copy_verdict("export const total = zorble", [other_caller, helper])
    assert (verdict.text, verdict.sure) == ("QuantifyWidgets(config, 3);", True)
    assert verdict.length == len(" = zorble") and verdict.occurrences == 1


def test_the_file_itself_is_a_source_but_never_the_cursor() -> None:
    prefix = "a.on('x', f);\nb.on('y', g);\nc.on('x"
    assert copy_prediction(prefix, "')\n", []) == "', f);"  # from line 1, not from the cursor itself
    assert copy_prediction("only.once(", "", []) == ""
    assert copy_prediction("x = ", "\nlater: x = 42;\n", []) == "42;"  # below the cursor line too
    assert own_sources("abc", "d\nrest") == ["ab\n", "rest"]
    # a run of the same character: the shifted copy that runs into the cursor votes for nothing
    assert not copy_verdict("// " + "-" * 10, own_sources("// " + "-" * 10, "")).sure


def test_the_completer_copies_a_sure_line_and_asks_the_model_otherwise(engine: TorchEngine) -> None:
    from server.completion import Completer
    from server.retrieval.vocab import new_index

    index = new_index(engine.tokenizer)
    index.build([("lib/people.js", "function names(people, list) {\n  for (const p of people) list.push(p.fullName);\n}\n")])
    completer = Completer(engine, index=index)
    settings = Settings(model="x", max_new_tokens=8)
    text = "function render(people, out) {\n  for (const p of people) out.push(p.ful"
    done = completer.complete(text, len(text), settings=settings, key="main.js")
    assert (done.text, done.result) == ("lName);", None) and done.reason.startswith("copied")
    assert completer.stats.snapshot()["copied"] == 1
    # Off: the model alone, no copying.
    off = completer.complete(text, len(text), settings=Settings(model="x", max_new_tokens=8, workspace_index="off"), key="main.js")
    assert off.result is not None and not off.reason.startswith("copied")
    # Nothing long enough elsewhere: the model answers.
    fresh = "const zebra = quaggaFactory("
    asked = completer.complete(fresh, len(fresh), settings=settings, key="main.js")
    assert asked.result is not None


# -- narrowing by whole identifiers (WorkspaceIndex.copy_sources) -------------------------------


def byte_ids(texts: list[str]) -> list[list[int]]:
    return [[ord(c) % 256 for c in t] for t in texts]


def test_bounded_words_are_whole_identifiers_with_a_bound_on_each_side() -> None:
    tail = "ull(name, user.id) + x"
    # `ull` may be the end of a longer name and `x` the start of one; the others are whole.
    assert [tail[s : s + 4] for s, _ in bounded_words(tail)] == ["name", "user", "id) "]
    assert [h for _, h in bounded_words(tail)] == [word_id("name"), word_id("user"), word_id("id")]
    assert bounded_words("nothing") == [] and bounded_words(" $el2 ") == [(1, word_id("$el2"))]


def test_narrowed_verdicts_equal_a_scan_of_every_text() -> None:
    rng = random.Random(11)
    # Names that end other names (`name`, `username`) make a word at a tail's start ambiguous.
    names = ["user", "name", "username", "id", "userid", "list", "push", "item", "subitem", "key", "x", "$el"]

    def line() -> str:
        a, b, c = (rng.choice(names) for _ in range(3))
        return rng.choice([f"{a}.{b}({c});", f"const {a} = {b}[{c}];", f"if ({a}) {{", "}", f"{a}.push({b}, {c});"])

    files = {f"f{i}.js": "\n".join(line() for _ in range(rng.randint(0, 40))) + "\n" for i in range(25)}
    index = WorkspaceIndex(byte_ids, 256)
    index.build(files.items())
    narrowed_somewhere = 0
    for _ in range(400):
        key = rng.choice(list(files))
        text = files[key]
        if len(text) < 2:
            continue
        prefix = text[: rng.randrange(1, len(text))]
        texts, narrow, first = index.copy_sources(prefix[-COPY_MAX_TAIL:], exclude=key)
        assert texts == [t for k, t in files.items() if k != key]
        for n in range(1, min(len(prefix), COPY_MAX_TAIL) + 1):
            kept = narrow(n)
            narrowed_somewhere += len(kept) < len(texts)
            holding = [t for t in texts if prefix[-n:] in t]
            assert [t for t in kept if t in holding] == holding  # every text that holds it, in order
        for at_least in (1, SURE_MIN_CHARS):
            fast = copy_verdict(prefix, texts, at_least=at_least, narrow=narrow, first=first)
            assert fast == copy_verdict(prefix, texts, at_least=at_least)
    assert narrowed_somewhere > 1000  # the check above is not vacuous


def test_a_text_that_changed_since_it_was_indexed_is_never_left_out() -> None:
    index = WorkspaceIndex(byte_ids, 256)
    index.build([("a.js", "const user = load(id);\n"), ("b.js", "other();\n")])
    texts, narrow, first = index.copy_sources(" = load(id", exclude="")
    assert first and narrow(len(" = load(id")) == ["const user = load(id);\n"]
    # The analogy lines still know the old b.js (as between two steps of an update): its new
    # text is another object, so nothing is known of it and it stays a candidate.
    index.update("b.js", "let user = load(id);\n")
    index.next_lines.set("b.js", "other();\n")
    texts, narrow, _ = index.copy_sources(" = load(id", exclude="")
    assert narrow(len(" = load(id")) == texts == ["const user = load(id);\n", "let user = load(id);\n"]
    # A word table asked for a version that has passed is refused (the caller does not narrow).
    version, _ = index.next_lines.rows([])
    index.next_lines.remove("a.js")
    assert index.next_lines.word_table([word_id("load")], version) is None
    version, rows = index.next_lines.rows([("b.js", "not the indexed text"), ("x.js", "load")])
    table = index.next_lines.word_table([word_id("load"), word_id("nowhere")], version)
    assert rows.tolist() == [-1, -1] and table is not None and table[rows].all()  # unknown: has all


# -- the copy rules (server.retrieval.rules) in verdicts and in the while-loading backend -----------


def test_a_verdict_counts_only_the_continuations_the_rules_admit() -> None:
    from server.retrieval.rules import CopyRules

    utils = "export function formatPrice(cents) {\n  return cents / 100;\n}\n"
    caller = "const a = formatPrice(order.total);\n"
    prefix = "  total() { return formatPrice("
    rules = CopyRules.at("file:///p/cart.js", prefix)

    def admit(rest: str, n: int, text: str, start: int) -> bool:
        return rules.admits(rest, n, text, start)

    assert copy_verdict(prefix, [utils], at_least=SURE_MIN_CHARS).text == "cents) {"  # the definition
    assert copy_verdict(prefix, [utils], at_least=SURE_MIN_CHARS, admit=admit).text == ""
    both = copy_verdict(prefix, [utils, caller], at_least=SURE_MIN_CHARS, admit=admit)
    assert both.text == "order.total);" and both.sure  # what the call site passes


def test_the_while_loading_backend_copies_only_sure_fitting_verdicts() -> None:
    from server.backends.base import BackendRequest
    from server.retrieval.copies import CopyBackend

    def ask(prefix: str, after: str, others: list[str]) -> str:
        backend = CopyBackend(lambda key: others)
        return backend.complete(BackendRequest(prompt=prefix, max_tokens=16, text_after=after, key="file:///p/a.js")).text

    # The editor's selected `false` after `f`: a 1-character match used to copy `turn a + b;`.
    selected = "function add(a, b) {\n  return a + b;\n  false"
    assert copy_prediction(selected, "\n}\n", []) == "turn a + b;"  # the any-length baseline
    assert ask(selected, "\n}\n", []) == ""
    helper = "function cartTotal(items) {\n  return items.reduce((sum, item) => sum + item.price, 0);\n}\n"
    assert ask("const t = order.items.reduce((sum, ", "\n", [helper]) == "item) => sum + item.price, 0);"
    split = helper + "function count(items) {\n  return items.reduce((sum, item) => sum + 1, 0);\n}\n"
    assert ask("  return items.reduce((sum, ", "\n", [split]) == ""  # not unanimous
    utils = "export function formatPrice(cents) {\n  return cents / 100;\n}\n"
    assert ask("  total() { return formatPrice(", "\n", [utils]) == ""  # a definition at a call site
