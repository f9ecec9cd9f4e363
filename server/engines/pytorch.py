"""The torch engine: any local Hugging Face causal-LM dir, on `server.gpt2` (plain GPT-2, no
transformers import) or transformers' modeling code, float32 / bf16 / int8 on CPU or CUDA.

Its KV sequences are `server.gpt2.KVCache` or transformers' `DynamicCache`; the decode loop is
`server.engines.decode`, shared with the llama.cpp engine.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch

from server.engines.base import BaseEngine, Progress, default_threads
from server.errors import ModelLoadError
from server.models import ModelSource, resolve_model
from server.tokenizer import load_model_tokenizer, native_allowed

log = logging.getLogger(__name__)



def pick_device(device: str, quantize: str) -> str:
    """`auto` means cuda when present, except int8 (dynamic quantization runs on CPU only)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() and quantize != "int8" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device is 'cuda' but torch sees no CUDA GPU; set device to 'cpu' or 'auto'.")
    if device == "cuda" and quantize == "int8":
        raise ModelLoadError(
            "int8 quantization runs on CPU only; use quantize 'bf16' on cuda, or device 'cpu'."
        )
    return device


CPUINFO = "/proc/cpuinfo"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (x86 `avx512_bf16` or `amx_bf16`, read from
    /proc/cpuinfo). Elsewhere bf16 is emulated and no faster, and other systems answer False."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.partition(":")[2].split()))
    except OSError:
        pass
    return False


def resolve_quantize(quantize: str, device: str) -> str:
    """The weight format `quantize` means on `device`: `auto` is bf16 on a CPU with bf16
    instructions (the matrix products in bf16, attention in float32: `server.gpt2`; ~17 % faster
    decode on such a CPU, the same dev-set scores) and float32 (`none`) anywhere else."""
    if quantize != "auto":
        return quantize
    return "bf16" if device == "cpu" and cpu_has_native_bf16() else "none"


class TorchSequence:
    """A KV cache and the tokens it holds (`server.engines.decode.KVSequence`)."""

    def __init__(self, engine: TorchEngine) -> None:
        self._engine = engine
        self.ids: list[int] = []
        self.cache: Any = engine._new_cache()

    def eval(self, ids: list[int], rows: int) -> torch.Tensor:
        with torch.inference_mode():
            logits, self.cache = self._engine._forward(ids, self.cache, rows)
        self.ids.extend(ids)
        return logits[0, -rows:]

    def truncate(self, keep: int) -> int:
        if keep >= len(self.ids):
            return len(self.ids)
        if keep > 0 and getattr(self.cache, "is_croppable", True):
            # transformers 5 crops by a negative count: drop everything after the first `keep`.
            self.cache.crop(keep - len(self.ids))
            del self.ids[keep:]
            return keep
        self.ids, self.cache = [], self._engine._new_cache()
        return 0


class TorchEngine(BaseEngine):
    """Model + tokenizer for one `Settings.model_key()`, in torch."""

    name = "torch"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.source: ModelSource | None = None
        self.device = "cpu"
        self._model: Any = None
        self._keeps_logits = False
        self._cache_arg = "cache"

    @property
    def model(self) -> Any:
        if self._model is None:
            raise ModelLoadError("The model is not loaded yet.")
        return self._model

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().num_embeddings)

    def _load(self, report: Progress) -> None:
        s = self.settings
        report("Resolving model", 0)
        source = resolve_model(s.model, s.adapter)
        device = pick_device(s.device, s.quantize)
        quantize = resolve_quantize(s.quantize, device)
        torch.set_num_threads(default_threads())
        report(f"Loading tokenizer from {source.path.name}", 10)
        tokenizer = load_model_tokenizer(source)
        report("Loading weights", 30)
        model: Any = _load_native(source, quantize)
        if model is None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(
                str(source.path), use_safetensors=True, trust_remote_code=False, dtype=torch.float32
            )
        if source.adapter is not None:
            report("Applying LoRA adapter", 60)
            model = apply_adapter(model, source)
        model.eval()
        if quantize == "int8":
            report("Quantizing to int8", 80)
            from server.quantize import quantize_int8

            model = quantize_int8(model)
        elif quantize == "bf16":
            model = model.to(torch.bfloat16)
        model = model.to(device)
        config = getattr(model, "config", None) or model.shape  # transformers' config, or GPT2LM's shape
        self.max_positions = int(
            getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024
        )
        # Only the last position's logits are used: skipping the LM head for the rest of a long
        # prompt saves vocab x width x prompt_len multiply-adds (~17 GFLOP for 700 tokens here).
        forward_params = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward_params  # then only the rows needed are computed
        self._cache_arg = "cache" if "cache" in forward_params else "past_key_values"
        self.format = {"none": "float32"}.get(quantize, quantize)
        self._finish_load(tokenizer)
        if getattr(tokenizer, "add_bos_token", False) and isinstance(getattr(tokenizer, "bos_token_id", None), int):
            self.bos_first = tokenizer.bos_token_id
        self.source, self.device, self._model = source, device, model
        report("Model ready", 100)
        log.info(
            "loaded %s (%s) on %s with the torch engine, quantize=%s%s, %s",
            source.path,
            source.kind,
            device,
            s.quantize,
            f" ({quantize})" if quantize != s.quantize else "",
            "native GPT-2 forward" if self.native else "transformers",
        )

    @property
    def native(self) -> bool:
        """Whether the model runs on `server.gpt2` rather than transformers' modeling code."""
        return self._model is not None and hasattr(self._model, "new_cache")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "device": self.device, "native": self.native}

    def _new_sequence(self, name: str) -> TorchSequence:
        return TorchSequence(self)

    def _after_failure(self) -> None:
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def _new_cache(self) -> Any:
        model = self.model
        if hasattr(model, "new_cache"):
            return model.new_cache()
        from transformers import DynamicCache

        return DynamicCache(config=model.config)

    def _forward(self, ids: list[int], cache: Any, rows: int = 1) -> tuple[torch.Tensor, Any]:
        """One forward pass over `ids` after `cache`: the logits of (at least) the last `rows`
        positions, and the cache (transformers 5 calls it `cache`, earlier versions
        `past_key_values`)."""
        tensor = torch.tensor([ids], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {self._cache_arg: cache, "use_cache": True}
        if self._keeps_logits:
            kwargs["logits_to_keep"] = rows
        out = self.model(input_ids=tensor, **kwargs)
        return out.logits, out[self._cache_arg] if isinstance(out, dict) else getattr(out, self._cache_arg)


def _load_native(source: ModelSource, quantize: str) -> Any:
    """The model on `server.gpt2` (fast import, lean decode) when it is a plain GPT-2 without an
    adapter or int8 (both need transformers' modules); None otherwise, or when NATIVE_ENV is 0."""
    if source.adapter is not None or quantize == "int8" or not native_allowed():
        return None
    from server.gpt2 import load_native

    return load_native(source.path)


def apply_adapter(model: Any, source: ModelSource) -> Any:
    """Apply a peft LoRA adapter and merge it into the base weights (no adapter cost per token)."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelLoadError(
            "LoRA adapters need the `peft` package: pip install 'codeparrot-lsp[train]'."
        ) from exc
    peft_model = PeftModel.from_pretrained(model, str(source.adapter), is_trainable=False)
    return peft_model.merge_and_unload()
