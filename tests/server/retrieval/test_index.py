"""The workspace index: suffix-array longest matches, updates, exclusion, and which files get in."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from server.retrieval.files import scan_workspace
from server.retrieval.index import WorkspaceIndex
from server.retrieval.mixing import MixParams, NgramGuide, weight
from server.retrieval.suffix_array import Match, Segment, merge


def brute_longest(docs: list[list[int]], query: list[int]) -> tuple[int, dict[int, int]]:
    """Reference: scan every position of every doc."""
    for length in range(min(len(query), 64), 0, -1):
        tail = query[-length:]
        counts: dict[int, int] = {}
        for doc in docs:
            for i in range(len(doc) - length):
                if doc[i : i + length] == tail:
                    counts[doc[i + length]] = counts.get(doc[i + length], 0) + 1
        if counts:
            return length, counts
    return 0, {}


@pytest.mark.parametrize("vocab", [50, 70_000])
def test_longest_match_agrees_with_a_brute_force_scan(vocab: int) -> None:
    rng = np.random.default_rng(0)
    docs = [list(map(int, rng.integers(0, 6, size=int(rng.integers(5, 60))))) for _ in range(12)]
    seg = Segment([(f"d{i}", d) for i, d in enumerate(docs)], vocab)
    for _ in range(200):
        query = list(map(int, rng.integers(0, 6, size=int(rng.integers(1, 12)))))
        match = seg.longest(query)
        length, counts = brute_longest(docs, query)
        assert (match.length, match.counts) == (length, counts), query


def test_a_match_never_crosses_documents_and_excluded_docs_are_skipped() -> None:
    seg = Segment([("a", [7, 1, 2]), ("b", [4, 5, 1, 2, 9])], 100)
    assert seg.longest([1, 2]).counts == {9: 1}  # "1 2" ends document a: no next token there
    assert seg.longest([4, 5, 1, 2], exclude=["b"]).length == 0


def encode(texts: list[str]) -> list[list[int]]:
    return [[ord(c) for c in t] for t in texts]  # one token per character


def test_updates_replace_and_removals_drop_a_file() -> None:
    index = WorkspaceIndex(encode, 256)
    index.build([("a.js", "const helperOne = 1;"), ("b.js", "let x = 2;")])
    assert index.lookup(encode(["const helperO"])[0]).counts == {ord("n"): 1}
    index.update("a.js", "const helperTwo = 1;")
    assert index.lookup(encode(["const helperT"])[0]).counts == {ord("w"): 1}
    assert index.lookup(encode(["const helperO"])[0]).length < len("const helperO")
    index.remove("a.js")
    assert "a.js" not in index
    assert index.lookup(encode(["const helperT"])[0]).length < len("const helperT")
    assert index.lookup(encode(["let x "])[0]).counts == {ord("="): 1}


def test_the_current_document_is_excluded() -> None:
    index = WorkspaceIndex(encode, 256)
    index.build([("a.js", "foo(bar);"), ("b.js", "foo(baz);")])
    assert index.lookup(encode(["foo(ba"])[0], exclude="a.js").counts == {ord("z"): 1}


# The curve of stages 1-5 (min length 3): the mechanism tests' toy matches are a few tokens long.
SHORT = MixParams(min_length=3, tau=3.0, max_weight=0.95)


def test_guide_mixes_more_for_longer_matches() -> None:
    params = MixParams()
    assert weight(Match(params.min_length - 1, {5: 3}, 3), params) == 0.0
    assert 0 < weight(Match(6, {5: 3}, 3), params) < weight(Match(12, {5: 3}, 3), params) <= params.max_weight
    assert weight(Match(4, {5: 3}, 3), SHORT) > 0
    seg = Segment([("a", [1, 2, 3, 4, 5, 6, 7])], 10)
    guide = NgramGuide([lambda q, allowed: seg.longest(q, allowed=allowed)], [1, 2, 3, 4], SHORT)
    logits = torch.zeros(10)
    logits[9] = 1.0  # the model prefers 9
    assert int(guide([], logits).argmax()) == 5  # a 4-token match says 5
    assert int(guide([9], logits).argmax()) == 9  # no match after 9: the model alone


def test_scan_skips_ignored_minified_huge_binary_and_symlink_loops(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / ".gitignore").write_text("ignored/\n*.gen.js\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.js").write_text("export const ok = 1;\n")
    (tmp_path / "src" / "types.ts").write_text("export type T = number;\n")
    (tmp_path / "src" / "x.gen.js").write_text("export const gen = 1;\n")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "a.js").write_text("export const a = 1;\n")
    for skipped in ("node_modules", "dist", "build"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "a.js").write_text("export const a = 1;\n")
    (tmp_path / "src" / "app.min.js").write_text("var a=1;\n")
    (tmp_path / "src" / "long.js").write_text("var a = [" + "1," * 5000 + "];\n")
    (tmp_path / "src" / "bundle.js").write_text("function __webpack_require__(id) {}\n")
    (tmp_path / "src" / "huge.js").write_text("// x\n" * 300_000)
    (tmp_path / "src" / "bin.js").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "src" / "latin1.js").write_bytes(b"var s = '\xe9';\n")
    (tmp_path / "src" / "loop").symlink_to(tmp_path / "src")
    os.symlink(tmp_path / "src" / "self.js", tmp_path / "src" / "self.js")  # a link to itself
    (tmp_path / "src" / "dangling.js").symlink_to(tmp_path / "nowhere.js")
    with caplog.at_level(logging.INFO, logger="server.retrieval.files"):
        found = sorted(p.relative_to(tmp_path).as_posix() for p, _ in scan_workspace(tmp_path))
    assert found == ["src/ok.js", "src/types.ts"]
    logged = caplog.text
    for name in ("huge.js", "bin.js", "latin1.js", "app.min.js", "long.js", "bundle.js", "self.js", "dangling.js", "loop"):
        assert name in logged, name


def test_scan_stops_at_the_total_cap(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"f{i}.js").write_text(f"export const v{i} = 'x';\n" * 50)
    found = list(scan_workspace(tmp_path, max_total_bytes=3 * 1150 + 10))
    assert len(found) == 3


def test_scan_of_a_missing_folder_yields_nothing(tmp_path: Path) -> None:
    assert list(scan_workspace(tmp_path / "missing")) == []


def test_allowed_mask_keeps_only_occurrences_continued_by_an_allowed_token() -> None:
    # While healing spells the typed part of a word, only continuations that start with it count:
    # the longest match may then be a shorter one.
    seg = Segment([("a", [1, 2, 3, 4, 5]), ("b", [7, 2, 3, 4, 6])], 10)
    assert seg.longest([1, 2, 3, 4]) == Match(4, {5: 1}, 1, (5,))
    only_6 = np.zeros(10, dtype=bool)
    only_6[6] = True
    assert seg.longest([1, 2, 3, 4], allowed=only_6) == Match(3, {6: 1}, 2, (6,))
    nothing = np.zeros(10, dtype=bool)
    assert seg.longest([1, 2, 3, 4], allowed=nothing).length == 0
    # The guide passes the engine's healing candidates on as such a mask.
    guide = NgramGuide([lambda q, allowed: seg.longest(q, allowed=allowed)], [1, 2, 3, 4], SHORT)
    assert guide.match([], torch.tensor([6, 8])).counts == {6: 1}
    logits = torch.zeros(10)
    assert int(guide([], logits, torch.tensor([6, 8])).argmax()) == 6


# Token ids for the folding tests: 10, 11, 12 are blanks (say "\n  ", "\n    ", "  "), 1-9 words.
BLANK = np.zeros(20, dtype=bool)
BLANK[[10, 11, 12]] = True


def test_blank_runs_match_whatever_their_indentation() -> None:
    # The same code indented differently: "x\n    y" vs a query "x\n  " (one token each) and a
    # run of two blank tokens ("x\n  " + "  " + "z").
    seg = Segment([("a", [1, 2, 11, 5]), ("b", [1, 2, 10, 12, 6])], 20, BLANK)
    match = seg.longest([1, 2, 10])
    assert (match.length, match.counts) == (3, {5: 1, 6: 1})
    assert Segment([("a", [1, 2, 11, 5])], 20).longest([1, 2, 10]).length == 0  # unfolded: no match
    # What follows a match is the token the document had, not the canonical blank.
    assert seg.longest([1, 2]).counts == {11: 1, 10: 1}
    # A query's own run of blanks folds too.
    assert seg.longest([1, 2, 12, 10, 12]).counts == {5: 1, 6: 1}
    # The healing mask sees the original next token.
    only_11 = np.zeros(20, dtype=bool)
    only_11[11] = True
    assert seg.longest([1, 2], allowed=only_11).counts == {11: 1}


def test_folded_longest_match_agrees_with_a_brute_force_scan_of_folded_docs() -> None:
    rng = np.random.default_rng(1)
    docs = [list(map(int, rng.integers(0, 14, size=int(rng.integers(5, 60))))) for _ in range(10)]
    blank = np.zeros(14, dtype=bool)
    blank[[10, 11, 12, 13]] = True
    seg = Segment([(f"d{i}", d) for i, d in enumerate(docs)], 14, blank)

    def fold(ids: list[int]) -> list[tuple[int, int]]:  # (class, original) with blank runs cut
        out: list[tuple[int, int]] = []
        for t in ids:
            if blank[t] and out and out[-1][0] == -1:
                continue
            out.append((-1 if blank[t] else t, t))
        return out

    folded = [fold(d) for d in docs]
    for _ in range(200):
        query = [c for c, _ in fold(list(map(int, rng.integers(0, 14, size=int(rng.integers(1, 10))))))]
        best: tuple[int, dict[int, int]] = (0, {})
        for length in range(len(query), 0, -1):
            counts: dict[int, int] = {}
            for doc in folded:
                for i in range(len(doc) - length):
                    if [c for c, _ in doc[i : i + length]] == query[-length:]:
                        counts[doc[i + length][1]] = counts.get(doc[i + length][1], 0) + 1
            if counts:
                best = (length, counts)
                break
        match = seg.longest([10 if c == -1 else c for c in query])
        assert (match.length, match.counts) == best, query


def test_the_current_document_is_searched_whole_and_its_other_lines_reused() -> None:
    from server.retrieval.current import CurrentDocument

    builds: list[list[str]] = []

    def counting_encode(texts: list[str]) -> list[list[int]]:
        builds.append(texts)
        return encode(texts)

    doc = CurrentDocument(counting_encode, 256)
    prefix = "const zorble = 1;\n" + "x;\n" * 5000 + "const zo"
    segments = doc.segments("a.js", prefix, "\nmore();\n")
    assert ord("r") in merge([s.longest(encode(["const zo"])[0]) for s in segments]).counts  # 5,000 lines up
    around = segments[0]
    # Typing on the same line reuses the other lines' segment; only the cursor line is re-encoded.
    builds.clear()
    assert doc.segments("a.js", prefix + "r", "\nmore();\n")[0] is around
    assert builds == [["const zor", ""]]
    # An edit on another line (or another document) rebuilds it.
    assert doc.segments("a.js", "y" + prefix, "\nmore();\n")[0] is not around
    assert doc.segments("b.js", prefix, "\nmore();\n")[0] is not around
    # The cursor line copies from itself: `a(1), a(2), a(` continues with the pattern.
    line = doc.segments("c.js", "run a(1), a(2), a", "")
    found = merge([s.longest(encode(["run a(1), a(2), a"])[0]) for s in line])
    assert (found.length, found.counts) == (len("), a"), {ord("("): 1})


def test_a_predicted_line_break_is_the_models_own_and_so_is_the_end_of_a_blank_run() -> None:
    kinds = np.zeros(20, dtype=np.int8)
    kinds[[10, 11]] = 2  # line breaks with indentation
    kinds[12] = 1  # spaces
    seg = Segment([("a", [1, 2, 3, 4, 11, 5])], 20, kinds > 0)
    guide = NgramGuide([lambda q, allowed: seg.longest(q, allowed=allowed)], [1, 2, 3, 4], SHORT, blanks=kinds)
    logits = torch.zeros(20)
    logits[10] = 2.0  # the model's indentation for this file
    logits[7] = 3.0  # and its favourite token overall
    mixed = guide([], logits)
    assert int(mixed.argmax()) == 10  # the match says "a line break", the model says which one
    assert mixed[10] > mixed[11]
    # Spaces inside a line are copied as they are, not re-chosen.
    seg2 = Segment([("a", [1, 2, 3, 4, 12, 5])], 20, kinds > 0)
    guide2 = NgramGuide([lambda q, allowed: seg2.longest(q, allowed=allowed)], [1, 2, 3, 4], SHORT, blanks=kinds)
    assert int(guide2([], logits).argmax()) == 12
    # After a blank the model generated, a model that wants more blanks is left alone (the copy
    # comes from code indented differently); one that is done with them gets the counts.
    more = torch.zeros(20)
    more[12] = 5.0
    assert torch.equal(guide([11], more), more)
    assert int(guide([11], logits).argmax()) == 5


def test_the_guide_mixes_numpy_rows_as_it_mixes_torch_rows() -> None:
    # llama.cpp's rows are numpy arrays (its path never imports torch): the same scores either way.
    kinds = np.zeros(20, dtype=np.int8)
    kinds[[10, 11]] = 2
    seg = Segment([("a", [1, 2, 3, 4, 11, 5]), ("b", [1, 2, 3, 4, 6, 5])], 20, kinds > 0)
    lookups = [lambda q, allowed: seg.longest(q, allowed=allowed)]
    rng = np.random.default_rng(0)
    row = rng.normal(size=20).astype(np.float32)
    row[6] = row.min() - 1.0  # the model's least favourite: only the mixing can choose it
    for allowed in (None, np.array([6, 8, 11])):
        by_torch = NgramGuide(lookups, [1, 2, 3, 4], SHORT, blanks=kinds)([], torch.from_numpy(row.copy()), allowed)
        by_numpy = NgramGuide(lookups, [1, 2, 3, 4], SHORT, blanks=kinds)([], row.copy(), allowed)
        assert isinstance(by_numpy, np.ndarray)
        np.testing.assert_allclose(by_numpy, by_torch.numpy(), rtol=1e-5, atol=1e-5)
        assert int(by_numpy.argmax()) == int(by_torch.argmax()) != int(row.argmax())


def test_the_guide_drafts_what_followed_a_long_unanimous_match() -> None:
    doc = list(range(1, 30))  # 1 2 3 ... 29, every token once
    seg = Segment([("a", doc)], 40)
    guide = NgramGuide([lambda q, allowed: seg.longest(q, allowed=allowed)], doc[:10], MixParams(draft_min_length=8))
    logits = torch.zeros(40)
    assert int(guide([], logits).argmax()) == 11  # a 10-token match says 11
    assert guide.draft([11], 4) == [12, 13, 14, 15]  # the model took 11: copy on from there
    assert guide.draft([7], 4) == []  # it took something else: no draft
    assert guide.draft([11], 0) == []
    short = NgramGuide([lambda q, allowed: seg.longest(q, allowed=allowed)], doc[7:10], MixParams(draft_min_length=8))
    short([], logits)
    assert short.draft([11], 4) == []  # a 3-token match is too weak to be worth a draft
    # Two different continuations: no draft either.
    split = Segment([("a", [1, 2, 3, 4, 5, 6, 7, 8, 9, 20]), ("b", [1, 2, 3, 4, 5, 6, 7, 8, 9, 21])], 40)
    both = NgramGuide([lambda q, allowed: split.longest(q, allowed=allowed)], list(range(1, 10)))
    both([], logits)
    assert both.draft([20], 4) == []


def test_the_file_being_edited_is_preferred_within_the_slack() -> None:
    from server.retrieval.mixing import prefer_local

    params = MixParams(min_length=3, own_file_slack=2)  # the default is 0: ties only
    local, longer = Match(5, {1: 1}, 1), Match(7, {2: 9}, 9)
    assert prefer_local(local, longer, params) is local  # 2 shorter: the file's own idiom
    assert prefer_local(local, Match(8, {2: 9}, 9), params).counts == {2: 9}  # 3 shorter: the longer
    assert prefer_local(Match(2, {1: 1}, 1), Match(4, {2: 1}, 1), params).counts == {2: 1}  # too short to win
    pooled = prefer_local(local, Match(5, {2: 3}, 3), MixParams(own_file_slack=-1))
    assert pooled.counts == {1: 1, 2: 3}  # -1: equal lengths pool


def test_a_segment_gives_every_document_back_exactly() -> None:
    # Runs of blank tokens (10-13) of every length, at a document's start and end, are folded
    # for matching; the ids come back as they were given, so the index keeps no second copy.
    rng = np.random.default_rng(2)
    blank = np.zeros(14, dtype=bool)
    blank[[10, 11, 12, 13]] = True
    docs = [list(map(int, rng.choice([1, 2, 3, 10, 11, 12, 13], size=int(rng.integers(0, 40))))) for _ in range(30)]
    docs += [[10, 11, 12], [1, 13, 13, 13, 13], []]
    for vocab in (14, 70_000):
        seg = Segment([(f"d{i}", d) for i, d in enumerate(docs)], vocab, blank)
        for i, doc in enumerate(docs):
            assert seg.ids(f"d{i}").tolist() == doc, doc
    assert seg.ids("nope") is None


def test_folding_the_delta_into_the_base_keeps_every_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import server.retrieval.index as index_module

    blank = np.zeros(256, dtype=bool)
    blank[[ord(" "), ord("\n")]] = True  # one token per character: spaces and line breaks are blank
    index = WorkspaceIndex(encode, 256, blank)
    index.build([("a.js", "alpha(1);\n    beta(2);"), ("b.js", "gamma(3);"), ("c.js", "delta(4);")])
    monkeypatch.setattr(index_module, "DELTA_MAX_TOKENS", 12)
    index.update("b.js", "gamma(33);")  # 10 tokens: stays in the delta
    index.remove("c.js")
    assert index._base_keys == {"a.js", "b.js", "c.js"}
    index.update("d.js", "epsilon(5);")  # 21 in the delta: everything folds into one new base
    assert index._base_keys == {"a.js", "b.js", "d.js"} and not index._delta_keys
    assert index._ids("a.js").tolist() == encode(["alpha(1);\n    beta(2);"])[0]  # blank run intact
    assert index.lookup(encode(["gamma("])[0]).counts == {ord("3"): 1}  # b.js's new text only
    assert index.lookup(encode(["delta("])[0]).length < len("delta(")  # removed stays removed
    assert index.lookup(encode(["epsilon("])[0]).counts == {ord("5"): 1}
    assert index.lookup(encode(["(1);\n beta("])[0]).counts == {ord("2"): 1}  # folded indentation
    assert index.tokens == len("alpha(1);\n    beta(2);") + len("gamma(33);") + len("epsilon(5);")


def test_edits_and_removals_during_the_first_build_survive_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The build reads the disk for a while; editor events arrive meanwhile (here from inside the
    # iterable, at a fixed point). Enough edits to fold must not fold into a base the build then
    # replaces, and a file deleted after the build read it must not come back.
    import server.retrieval.index as index_module

    monkeypatch.setattr(index_module, "DELTA_MAX_TOKENS", 12)
    index = WorkspaceIndex(encode, 256)

    def disk() -> Iterator[tuple[str, str]]:
        yield "a.js", "alpha(1);"
        yield "b.js", "gamma(3);"
        index.update("a.js", "alpha(111);")  # the open editor's text: 11 tokens
        index.update("n.js", "newfile(9);")  # 22 in the delta: past the fold threshold
        index.remove("b.js")  # deleted on disk after the build read it
        yield "c.js", "delta(4);"

    index.build(disk())
    assert index.lookup(encode(["alpha("])[0]).counts == {ord("1"): 1}
    assert index.lookup(encode(["alpha(1"])[0]).counts == {ord("1"): 1}  # 111, not the disk's 1)
    assert index.lookup(encode(["newfile("])[0]).counts == {ord("9"): 1}
    assert index.lookup(encode(["gamma("])[0]).length < len("gamma(")  # removed stays removed
    assert "b.js" not in index and "a.js" in index and "c.js" in index
    assert index.lookup(encode(["delta("])[0]).counts == {ord("4"): 1}
    # the fold the build held back happened once it ended: one base, nothing in the delta
    assert not index._delta_keys and index._base_keys == {"a.js", "c.js", "n.js"}
    texts = index.copy_sources("")[0]  # what character-level copies read
    assert "alpha(111);" in texts and "gamma(3);" not in texts


def test_small_suffix_arrays_sorted_in_python_equal_libdivsufsort() -> None:
    import pydivsufsort

    from server.retrieval.suffix_array import SMALL_SUFFIX_ARRAY, _suffix_array

    rng = np.random.default_rng(5)
    for n in [0, 1, 2, 5, 17, 100, SMALL_SUFFIX_ARRAY]:
        for wide, top in ((False, 0xFFFF), (True, 0x7FFFFFFF)):
            # Few distinct ids (long repeats), the separator (the largest id) among them.
            ids = rng.choice([0, 1, 2, 300, top], size=n)
            native = ids.astype(np.int32 if wide else np.uint16)
            data = native.astype(">u4" if wide else ">u2").tobytes()
            sa = _suffix_array(native, data, 4 if wide else 2)
            assert sa.dtype == np.int32
            assert sa.tolist() == (pydivsufsort.divsufsort(native).tolist() if n else [])
