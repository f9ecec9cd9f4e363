"""training.modeling's shared rules: the model context and the bf16 choice of both trainers."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, RobertaConfig

from training.config import ConfigError
from training.modeling import context_length, use_bf16


def test_context_length_reads_the_config_and_leaves_roberta_its_padding_offset() -> None:
    assert context_length(GPT2Config(n_positions=256)) == 256
    assert context_length(RobertaConfig(max_position_embeddings=514)) == 512
    assert context_length(object()) is None


def test_bf16_auto_follows_the_device_and_true_or_false_are_obeyed() -> None:
    assert use_bf16("auto", "cpu") is False
    assert use_bf16("true", "cpu") is True  # CPU autocast, as the Trainer does when asked
    assert use_bf16("false", "cuda") is False
    if torch.cuda.is_available():
        assert use_bf16("auto", "cuda") is torch.cuda.is_bf16_supported()


def test_bf16_true_on_a_gpu_without_it_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ConfigError, match="no bf16"):
        use_bf16("true", "cuda")
    assert use_bf16("auto", "cuda") is False
