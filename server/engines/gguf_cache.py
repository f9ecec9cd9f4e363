"""Model dirs as GGUF files for the llama.cpp engine: converted on first use, cached by content.

A Hugging Face GPT-2 dir (the shipped model, a local or hub one, with a LoRA adapter merged in) is
written as GGUF by `server.engines.gguf_export`, then quantized by llama.cpp itself
(`llama_model_quantize`) when the format asks for it. The file is cached under the user's cache
dir, named by the sha256 of every file the conversion reads plus the format, so a second start
converts nothing and any change to the weights, tokenizer or adapter makes a new file. Other
architectures are not converted here: llama.cpp's own `convert_hf_to_gguf.py` needs its checkout
and per-architecture Python; give such a model as a `.gguf` file instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from server.models import ModelSource
from server.settings import cache_dir

log = logging.getLogger(__name__)

# Bumped when the conversion writes different bytes for the same inputs: old files are not reused.
CONVERTER_VERSION = "1"
# Formats the cache makes: float32 and float16 straight from the writer, q8_0 by llama.cpp's quantizer.
FORMATS = ("f32", "f16", "q8_0")
# Files of a model dir (and of an adapter dir) whose bytes decide the GGUF.
KEY_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "adapter_config.json",
    "adapter_model.safetensors",
)
HASH_BLOCK = 1 << 20


def content_key(source: ModelSource, fmt: str) -> str:
    """sha256 over the files the conversion reads (names and bytes), the converter and the format."""
    digest = hashlib.sha256(f"gguf-v{CONVERTER_VERSION}\0{fmt}\0".encode())
    for folder in (source.path, source.adapter):
        if folder is None:
            continue
        for name in KEY_FILES:
            path = folder / name
            if not path.is_file():
                continue
            digest.update(f"{name}\0{path.stat().st_size}\0".encode())
            with path.open("rb") as f:
                while block := f.read(HASH_BLOCK):
                    digest.update(block)
    return digest.hexdigest()[:32]


def gguf_for(source: ModelSource, fmt: str, report: Callable[[str], None] = lambda _m: None) -> Path:
    """The cached GGUF of `source` in `fmt` (one of FORMATS), converting it now if needed.

    Raises `server.engines.gguf_export.ExportError` for a dir the conversion cannot write (not
    GPT-2, pickled weights only ...) and OSError for an unwritable cache dir.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown GGUF format {fmt!r}; expected one of {FORMATS}")
    folder = cache_dir() / "gguf"
    target = folder / f"{source.path.name}-{content_key(source, fmt)}.{fmt}.gguf"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    report(f"Converting {source.path.name} to GGUF ({fmt}, once)")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".convert-") as scratch:
        work = Path(scratch)
        model_dir = _merged_adapter(source, work / "merged") if source.adapter is not None else source.path
        from server.engines.gguf_export import export

        if fmt == "q8_0":
            # Quantize from float32: q8_0 of f16 weights would round twice.
            full = work / "f32.gguf"
            export(model_dir, full, "f32")
            _quantize(full, work / "out.gguf", fmt)
        else:
            export(model_dir, work / "out.gguf", fmt)
        os.replace(work / "out.gguf", target)  # same folder: atomic, never a half-written cache file
    log.info("converted %s to %s", source.path, target)
    return target


def _quantize(src: Path, dst: Path, fmt: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[fmt]
    params.nthread = max(1, os.cpu_count() or 1)
    status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if status != 0 or not dst.is_file():
        raise RuntimeError(f"llama.cpp could not quantize {src.name} to {fmt} (status {status})")


def _merged_adapter(source: ModelSource, out: Path) -> Path:
    """The base model with the LoRA adapter merged in, saved as a plain GPT-2 dir (safetensors)."""
    from transformers import AutoModelForCausalLM

    from server.engines.pytorch import apply_adapter
    from server.tokenizer import tokenizer_dir

    model = AutoModelForCausalLM.from_pretrained(str(source.path), use_safetensors=True, trust_remote_code=False)
    merged = apply_adapter(model, source)
    merged.save_pretrained(str(out), safe_serialization=True)
    tokens = tokenizer_dir(source)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (tokens / name).is_file():
            shutil.copy2(tokens / name, out / name)
    return out
