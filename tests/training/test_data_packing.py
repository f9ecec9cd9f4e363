"""Packing (full blocks, EOS between documents, no padding) and FIM formats."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from training.data.packing import encode_documents, fim_split, pack_blocks


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_pack_blocks_concatenates_with_eos_and_drops_the_tail() -> None:
    docs = [np.arange(1, 6), np.arange(10, 13), np.arange(20, 27)]  # 5 + 3 + 7 tokens, + 3 EOS = 18
    blocks = pack_blocks(docs, eos_id=0, block_size=4)
    assert blocks.shape == (4, 4)  # 18 // 4 full blocks, 2 tokens dropped, nothing padded
    assert blocks.reshape(-1).tolist() == [1, 2, 3, 4, 5, 0, 10, 11, 12, 0, 20, 21, 22, 23, 24, 25]
    assert pack_blocks([], 0, 4).shape == (0, 4)
    assert pack_blocks([np.arange(1, 3)], 0, 4).shape == (0, 4)
    with pytest.raises(ValueError):
        pack_blocks(docs, 0, 0)


def test_fim_split_covers_the_text() -> None:
    rng = random.Random(0)
    for _ in range(50):
        text = "".join(chr(97 + rng.randint(0, 25)) for _ in range(rng.randint(0, 40)))
        p, m, s = fim_split(text, rng)
        assert p + m + s == text


def _decode_parts(tok, ids: list[int]) -> tuple[str, list[str]]:
    pre, mid, suf = (tok.convert_tokens_to_ids(t) for t in ("<fim_prefix>", "<fim_middle>", "<fim_suffix>"))
    order = [{pre: "P", mid: "M", suf: "S"}[i] for i in ids if i in (pre, mid, suf)]
    pieces: list[list[int]] = [[]]
    for i in ids:
        if i in (pre, mid, suf):
            pieces.append([])
        else:
            pieces[-1].append(i)
    return "".join(order), [tok.decode(p) for p in pieces[1:]]


def test_fim_formats_psm_and_spm(tok) -> None:
    texts = [f"function f{i}() {{\n  return {i} * 2;\n}}\n" for i in range(200)]
    keys = [str(i) for i in range(200)]
    docs = encode_documents(tok, texts, keys, fim_rate=1.0, fim_spm_rate=0.5, seed=1)
    seen = set()
    for text, ids in zip(texts, docs, strict=True):
        order, parts = _decode_parts(tok, ids.tolist())
        seen.add(order)
        if order == "PSM":  # <fim_prefix>p<fim_suffix>s<fim_middle>m
            prefix, suffix, middle = parts
        else:
            assert order == "SPM"  # <fim_suffix>s<fim_prefix>p<fim_middle>m
            suffix, prefix, middle = parts
        assert ids[0] in (tok.convert_tokens_to_ids("<fim_prefix>"), tok.convert_tokens_to_ids("<fim_suffix>"))
        assert prefix + middle + suffix == text
    assert seen == {"PSM", "SPM"}


def test_fim_rate_and_determinism(tok) -> None:
    texts = [f"let v{i} = {i};\n" for i in range(400)]
    keys = [str(i) for i in range(400)]
    pre = tok.convert_tokens_to_ids("<fim_prefix>")
    a = encode_documents(tok, texts, keys, fim_rate=0.5, seed=3)
    b = encode_documents(tok, texts, keys, fim_rate=0.5, seed=3)
    c = encode_documents(tok, texts, keys, fim_rate=0.5, seed=4)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert [x.tolist() for x in a] != [x.tolist() for x in c]
    n_fim = sum(pre in x.tolist() for x in a)
    assert 140 < n_fim < 260  # ≈ 0.5 × 400
    # a document's FIM choice depends on its key, not on its position in the list
    rev = encode_documents(tok, texts[::-1], keys[::-1], fim_rate=0.5, seed=3)
    assert [x.tolist() for x in rev[::-1]] == [x.tolist() for x in a]
    plain = encode_documents(tok, texts, keys, fim_rate=0.0, seed=3)
    assert [tok.decode(x) for x in plain] == texts


def test_fim_needs_fim_tokens(tiny_model_dir_no_fim: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir_no_fim)
    with pytest.raises(ValueError, match="fim_prefix"):
        encode_documents(tok, ["abc"], ["k"], fim_rate=1.0)
