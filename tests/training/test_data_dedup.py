"""Exact (whitespace-normalised) and MinHash near-dedup."""

from __future__ import annotations

from conftest import js_source

from training.data.dedup import ExactDedup, NearDedup, normalised_hash


def test_exact_dedup_ignores_whitespace_only() -> None:
    d = ExactDedup()
    a = js_source(1)
    assert not d.is_duplicate(a)
    assert d.is_duplicate(a.replace("\n", "\r\n").replace("  ", "\t") + "\n\n")
    assert not d.is_duplicate(a.replace("return", "yield", 1))
    assert normalised_hash("a  b") == normalised_hash("a b\n") != normalised_hash("ab")


def test_near_dedup_catches_edits_not_distinct_files() -> None:
    d = NearDedup(threshold=0.85, num_perm=128)
    base = js_source(10, n_blocks=10)
    assert not d.is_duplicate(base)
    assert d.is_duplicate(base.replace("'use strict';", "'use strict'; // edited header"))
    for seed in range(11, 30):  # distinct files with the same templates are kept
        assert not d.is_duplicate(js_source(seed, n_blocks=10)), seed


def test_near_dedup_threshold_matters() -> None:
    base = js_source(40, n_blocks=10)
    half = base[: len(base) // 2] + js_source(41, n_blocks=5)  # shares ~half its identifiers
    strict, loose = NearDedup(threshold=0.85), NearDedup(threshold=0.3)
    for d in (strict, loose):
        assert not d.is_duplicate(base)
    assert not strict.is_duplicate(half)
    assert loose.is_duplicate(half)


def test_tiny_files_are_never_near_duplicates() -> None:
    d = NearDedup()
    assert not d.is_duplicate("module.exports = a;")
    assert not d.is_duplicate("module.exports = a;\n")
