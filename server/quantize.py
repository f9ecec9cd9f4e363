"""CPU precision options for a loaded causal LM: int8 dynamic quantization and bf16."""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

log = logging.getLogger(__name__)


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every transformers `Conv1D` (GPT-2 family) with an equivalent `nn.Linear`.

    `quantize_dynamic` only knows `nn.Linear`; GPT-2's projections are `Conv1D` (y = x @ W + b
    with W stored as (in, out)), so without this swap int8 would leave them in fp32. No library
    does the swap, hence this loop. Returns the number of modules replaced.
    """
    from transformers.pytorch_utils import Conv1D

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                n_in, n_out = child.weight.shape
                linear = nn.Linear(n_in, n_out, bias=True, dtype=child.weight.dtype)
                with torch.no_grad():
                    linear.weight.copy_(child.weight.t())
                    linear.bias.copy_(child.bias)
                setattr(parent, name, linear)
                replaced += 1
    return replaced


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of all linear layers (weights int8, activations quantized per call)."""
    replaced = conv1d_to_linear(model)
    with warnings.catch_warnings():
        # torch 2.13 flags its quantized-tensor constructors as deprecated (successor: torchao);
        # they still work and torchao is not a dependency, so keep the log clean.
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*", category=UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    log.info("int8: converted %d Conv1D layers, quantized nn.Linear layers", replaced)
    return quantized
