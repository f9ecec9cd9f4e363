"""The shipped model dir's cap in the accelerator kit's plan: a shape whose fp16 weights, manifest (as xz),
tokenizer, card and records would weigh more than 60 MB is refused before anything is bundled."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.kit.plan import PlanError
from training.kit.sizing import (
    SHIP_CAP_BYTES,
    TOKENS_PER_DOC,
    V3_TOKENS,
    check_ship_cap,
    manifest_xz_bytes,
    model_info,
    ship_bytes,
)

REPO = Path(__file__).resolve().parents[2]
V3_DOCS = V3_TOKENS // TOKENS_PER_DOC  # ~118 k files: the manifest of a model trained on corpus v3 whole
TOKENIZER = 541_250  # the shipped tokenizer.json + tokenizer_config.json


def test_the_manifest_of_corpus_v3_is_about_5_mb_as_xz() -> None:
    assert 5_000_000 < manifest_xz_bytes(V3_DOCS) < 6_000_000


@pytest.mark.parametrize(("parameters", "fits"), [
    (14_186_496, True),   # 6 x 384, shipped
    (23_443_840, True),   # 8 x 448, the next default
    (25_858_112, True),   # 9 x 448
    (26_786_304, False),  # 7 x 512: 60.1 MB, just over
    (55_127_680, False),  # 10 x 640: 117 MB
])
def test_a_shape_over_the_cap_is_refused(parameters: int, fits: bool) -> None:
    shipped = ship_bytes(parameters, V3_DOCS, TOKENIZER)
    assert (shipped <= SHIP_CAP_BYTES) is fits
    if fits:
        check_ship_cap(shipped, 2 * parameters, SHIP_CAP_BYTES, "a shape")
    else:
        with pytest.raises(PlanError, match=r"cannot ship: .* over the 60 MB cap.*--ship-cap-mb 0"):
            check_ship_cap(shipped, 2 * parameters, SHIP_CAP_BYTES, "a shape")
    check_ship_cap(shipped, 2 * parameters, 0, "a shape")  # no cap: a run that will not ship


def test_the_next_default_recipe_ships_under_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.config import load_recipe

    monkeypatch.chdir(REPO)  # the recipe names the shipped tokenizer relative to the repository
    info = model_info(load_recipe("scratch-js-8x448"), V3_DOCS)
    assert info["parameters"] == 23_443_840 and info["weights_bytes"] == 46_887_680
    assert info["ship_bytes"] <= SHIP_CAP_BYTES - 4_000_000  # room for a larger corpus or a longer card
