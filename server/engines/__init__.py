"""Where logits come from, in process: torch (`pytorch`, any Hugging Face model dir) and llama.cpp
(`llamacpp`, GGUF: model dirs converted once and cached, or a `.gguf` file). Both run the same
decode loop (`decode`): KV reuse across keystrokes, token healing, workspace mixing and copy
drafts on the logits row, stop checks and cancellation.

`load_engine(settings)` picks one by the `engine` setting: `auto` is llama.cpp when
llama-cpp-python imports and the model converts, torch otherwise; `llama` asks for llama.cpp and
says so when it falls back; `torch` never tries llama.cpp.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from server.engines.base import BaseEngine, Progress
from server.errors import CodeparrotError, ModelLoadError
from server.settings import Settings
from server.tokenizer import is_gguf_path

log = logging.getLogger(__name__)

__all__ = ["BaseEngine", "load_engine"]


def load_engine(
    settings: Settings,
    progress: Progress | None = None,
    notice: Callable[[str], None] | None = None,
) -> BaseEngine:
    """A loaded engine for `settings`. When llama.cpp cannot serve a model dir (no
    llama-cpp-python, a model it cannot convert, a failed load), torch serves it and `notice`
    gets one line saying why (only when the user asked for `llama`; under `auto` it is logged)."""
    from server.engines.llamacpp import LlamaEngine

    gguf = is_gguf_path(settings.model)
    if settings.engine == "torch" and gguf:
        raise ModelLoadError(
            f"{settings.model!r} is a GGUF file, which the llama.cpp engine runs: set codeparrot.engine "
            "to 'auto' or 'llama' (and install codeparrot-lsp[fast])."
        )
    if settings.engine != "torch":
        engine = LlamaEngine(settings)
        try:
            engine.load(progress)
            return engine
        except CodeparrotError as exc:
            if gguf:
                raise  # nothing else can run a .gguf file
            reason = exc.user_message
        engine.close()
        message = f"llama.cpp engine unavailable, completing with the torch engine: {reason}"
        if settings.engine == "llama" and notice is not None:
            notice(message)
        log.log(logging.WARNING if settings.engine == "llama" else logging.INFO, "%s", message)
    from server.engines.pytorch import TorchEngine

    torch_engine = TorchEngine(settings)
    torch_engine.load(progress)
    return torch_engine
