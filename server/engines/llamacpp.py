"""The llama.cpp engine: a GGUF model in this process, driven token by token through
llama-cpp-python's C API (`llama_cpp.llama_decode` on batches we fill ourselves).

Why the C API and not `llama_cpp.Llama`: the decode loop (`server.engines.decode`) needs the KV
state of several documents at once, cut back to any position, and the logits row of every
drafted token; `Llama` keeps one sequence and samples for us. One llama.cpp context holds up to
`MAX_CACHED_SEQUENCES` sequences (one per document being typed in, `seq_id` = slot) in a unified
KV cache; a request removes only the KV past the common prefix (`llama_memory_seq_rm`) and
evaluates the new tail.

Models: a Hugging Face GPT-2 dir (the shipped model among them) is converted once and cached
(`server.engines.gguf_cache`), its tokenizer loaded from the dir as the torch engine does; a
`.gguf` file runs directly with the tokenizer its metadata carries (transformers' GGUF reader),
which the workspace index then uses too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from server.engines.base import MAX_CACHED_SEQUENCES, BaseEngine, Progress, default_threads
from server.errors import ModelLoadError, ModelNotFoundError
from server.tokenizer import gguf_tokenizer, is_gguf_path, load_model_tokenizer

log = logging.getLogger(__name__)

# Tokens one llama_decode call takes (longer evaluations are split): a prefill chunk
# (decode.PREFILL_CHUNK) and a verified draft fit; it sizes llama.cpp's compute buffer.
BATCH_TOKENS = 512
# Positions kept per document: a prompt is at most codeparrot.maxPromptTokens (768 by default) plus
# the new tokens; a model trained on 32k positions would otherwise reserve KV cells for 4 x 32k.
MAX_POSITIONS = 4096
# quantize setting -> GGUF format. q8_0 decodes fastest here at no measured quality cost;
# llama.cpp has no bf16 matmuls on most CPUs, so bf16 maps to f16.
FORMAT_OF_QUANTIZE = {"auto": "q8_0", "int8": "q8_0", "none": "f32", "bf16": "f16"}
THREADS_BATCH_ENV = "CODEPARROT_THREADS_BATCH"


# ggml's log levels (ggml.h: NONE, DEBUG, INFO, WARN, ERROR, CONT) -> logging. llama.cpp's INFO is
# its per-load listing of tensors and buffers: debugging detail for this server.
GGML_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
# Expected with one unified KV cache for several documents (each stays within the trained context).
EXPECTED_WARNINGS = ("n_ctx_seq (",)
_llama_log = logging.getLogger("llama.cpp")
_log_state: dict[str, Any] = {"level": logging.DEBUG, "text": "", "callback": None}


def _route_llama_log() -> None:
    """llama.cpp's log into Python logging (the server's handlers and --log-level), line by line,
    instead of llama-cpp-python's prints to stderr."""
    import ctypes

    import llama_cpp

    if _log_state["callback"] is not None:
        return

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, _user: Any) -> None:
        if level != 5:  # CONT goes on with the previous level
            _log_state["level"] = GGML_LEVELS.get(level, logging.DEBUG)
        _log_state["text"] += text.decode("utf-8", "replace")
        *lines, _log_state["text"] = _log_state["text"].split("\n")
        for line in lines:
            expected = any(marker in line for marker in EXPECTED_WARNINGS)
            _llama_log.log(logging.DEBUG if expected else _log_state["level"], "%s", line)

    _log_state["callback"] = callback  # ctypes keeps no reference of its own
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def available() -> str | None:
    """None when llama-cpp-python imports, else why not (for the log and the user)."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        return f"llama-cpp-python is not installed ({exc}); pip install 'codeparrot-lsp[fast]'"
    except OSError as exc:  # the shared library failed to load
        return f"llama-cpp-python's library failed to load: {exc}"
    return None


def batch_threads() -> int:
    """Threads for batches (prefill): `CODEPARROT_THREADS_BATCH`, else as many as for decoding
    (`default_threads()`, half the CPUs). An editor's machine is never idle, and llama.cpp's
    threads wait on each other at every step: on 2 busy cores, 2 batch threads made a 768-token
    prefill 2.4-9x slower than one (benchmarks/README.md, 2026-12-06). Raise it on an idle
    many-core machine."""
    override = os.environ.get(THREADS_BATCH_ENV, "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    return default_threads()


class LlamaSequence:
    """One document's tokens in the shared llama.cpp context (`decode.KVSequence`)."""

    def __init__(self, engine: LlamaEngine, seq_id: int) -> None:
        self._engine = engine
        self.seq_id = seq_id
        self.ids: list[int] = []

    def eval(self, ids: list[int], rows: int) -> np.ndarray:
        n = len(ids)
        head = max(0, n - BATCH_TOKENS)  # what does not fit one batch goes first, without logits
        for start in range(0, head, BATCH_TOKENS):
            self._decode(ids[start : min(start + BATCH_TOKENS, head)], rows=0)
        return self._decode(ids[head:], rows)

    def _decode(self, ids: list[int], rows: int) -> np.ndarray:
        """One llama_decode of `ids` (≤ BATCH_TOKENS) after `self.ids`; the last `rows` logits rows."""
        engine = self._engine
        llama_cpp = engine.lib
        batch = engine.batch
        n, start = len(ids), len(self.ids)
        batch.n_tokens = n
        for i, token in enumerate(ids):
            batch.token[i] = token
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = self.seq_id
            batch.logits[i] = i >= n - rows
        status = llama_cpp.llama_decode(engine.ctx, batch)
        if status != 0:
            # The failed batch may have left part of its KV: make the sequence agree with `ids`.
            llama_cpp.llama_memory_seq_rm(engine.memory, self.seq_id, start, -1)
            raise RuntimeError(f"llama_decode returned {status}")
        self.ids.extend(ids)
        out = np.empty((rows, engine.n_vocab), dtype=np.float32)  # copied: llama.cpp reuses its buffer
        for r in range(rows):
            pointer = llama_cpp.llama_get_logits_ith(engine.ctx, n - rows + r)
            out[r] = np.ctypeslib.as_array(pointer, shape=(engine.n_vocab,))
        return out

    def truncate(self, keep: int) -> int:
        if keep >= len(self.ids):
            return len(self.ids)
        llama_cpp, memory = self._engine.lib, self._engine.memory
        if keep > 0 and llama_cpp.llama_memory_seq_rm(memory, self.seq_id, keep, -1):
            del self.ids[keep:]
            return keep
        llama_cpp.llama_memory_seq_rm(memory, self.seq_id, -1, -1)  # all of it (always possible)
        self.ids = []
        return 0


class LlamaEngine(BaseEngine):
    """A GGUF model (converted from a model dir, or given) on llama.cpp's CPU backend."""

    name = "llama"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.gguf: Path | None = None
        self.lib: Any = None
        self.model: Any = None
        self.ctx: Any = None
        self.memory: Any = None
        self.batch: Any = None
        self.n_vocab = 0
        self._free_slots: list[int] = list(range(MAX_CACHED_SEQUENCES))

    @property
    def vocab_size(self) -> int:
        return self.n_vocab

    def _load(self, report: Progress) -> None:
        why = available()
        if why is not None:
            raise ModelLoadError(why)
        import llama_cpp

        _route_llama_log()
        report("Resolving model", 0)
        path, tokenizer, fmt = self._gguf(report)
        report("Loading weights", 60)
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not model:
            raise ModelLoadError(
                f"llama.cpp could not load {path.name}: not a GGUF file it reads (truncated, corrupt, or an "
                "architecture this llama.cpp does not know). The log has llama.cpp's own reason."
            )
        self.lib, self.model, self.gguf, self.format = llama_cpp, model, path, fmt
        try:
            if tokenizer is None:  # a .gguf file's own, read once llama.cpp has accepted the file
                report(f"Loading tokenizer from {path.name}", 70)
                tokenizer = gguf_tokenizer(path)
            self._open_context(len(tokenizer))
        except BaseException:
            self.close()
            raise
        self._warm_up()
        self._finish_load(tokenizer)
        report("Model ready", 100)

    def _gguf(self, report: Progress) -> tuple[Path, Any, str]:
        """(the GGUF to load, the model dir's tokenizer or None for a .gguf file, its format)."""
        s = self.settings
        if is_gguf_path(s.model):
            path = Path(s.model).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(f"GGUF file {s.model!r} does not exist.")
            if s.adapter:
                raise ModelLoadError("A LoRA adapter cannot be applied to a .gguf model; merge it before converting.")
            return path, None, "as given"
        from server.engines.gguf_cache import gguf_for
        from server.models import resolve_model

        fmt = FORMAT_OF_QUANTIZE[s.quantize]
        source = resolve_model(s.model, s.adapter)
        report(f"Loading tokenizer from {source.path.name}", 10)
        tokenizer = load_model_tokenizer(source)
        try:
            from server.engines.gguf_export import ExportError  # imports the gguf writer

            return gguf_for(source, fmt, lambda message: report(message, 20)), tokenizer, fmt
        except ImportError as exc:  # the gguf writer (or peft, for an adapter) is not installed
            raise ModelLoadError(
                f"Converting {source.path.name} to GGUF needs {exc.name or exc}: pip install 'codeparrot-lsp[fast]'"
            ) from exc
        except ExportError as exc:
            raise ModelLoadError(f"The llama.cpp engine cannot convert {source.path.name}: {exc}") from exc

    def _open_context(self, tokenizer_size: int) -> None:
        """A context for MAX_CACHED_SEQUENCES documents of the model's full length, and a batch."""
        llama_cpp, path = self.lib, self.gguf
        name = path.name if path is not None else "the model"
        vocab = llama_cpp.llama_model_get_vocab(self.model)
        n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        positions = min(int(llama_cpp.llama_model_n_ctx_train(self.model)) or 1024, MAX_POSITIONS)
        if llama_cpp.llama_vocab_get_add_bos(vocab):
            self.bos_first = int(llama_cpp.llama_vocab_bos(vocab))
        if tokenizer_size > n_vocab:
            raise ModelLoadError(f"{name} has {n_vocab} tokens but its tokenizer {tokenizer_size}.")
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = positions * MAX_CACHED_SEQUENCES
        params.n_seq_max = MAX_CACHED_SEQUENCES
        params.kv_unified = True  # sequences share the cells: one long document may use more than its share
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_threads = default_threads()
        params.n_threads_batch = batch_threads()
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise ModelLoadError(f"llama.cpp could not create a context for {name} (out of memory?).")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self.n_vocab, self.max_positions = n_vocab, positions
        log.info(
            "loaded %s with the llama.cpp engine (%s, %d positions, %d/%d threads)",
            path, self.format, positions, params.n_threads, params.n_threads_batch,
        )

    def _warm_up(self) -> None:
        """Evaluate a short batch and one token once, then forget them: llama.cpp's first calls
        set up per-shape work (measured: the first prompt took ~1 s instead of ~30 ms), which
        belongs to the load, not to the user's first completion."""
        seq = LlamaSequence(self, self._free_slots[0])
        seq.eval([0] * 8, rows=1)
        seq.eval([0], rows=1)
        seq.truncate(0)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "gguf": str(self.gguf) if self.gguf else None}

    def _new_sequence(self, name: str) -> LlamaSequence:
        return LlamaSequence(self, self._free_slots.pop())  # the shell keeps ≤ MAX_CACHED_SEQUENCES

    def _drop_sequence(self, name: str) -> None:
        seq = self._sequences.pop(name, None)
        if isinstance(seq, LlamaSequence):
            self.lib.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
            self._free_slots.append(seq.seq_id)

    def close(self) -> None:
        """Free llama.cpp's context, batch and model (also done when the engine is collected)."""
        if self.lib is None:
            return
        lib, self.lib = self.lib, None
        if self.batch is not None:
            lib.llama_batch_free(self.batch)
        if self.ctx:
            lib.llama_free(self.ctx)
        if self.model:
            lib.llama_model_free(self.model)
        self.batch = self.ctx = self.model = self.memory = None

    def __del__(self) -> None:
        try:  # noqa: SIM105 (at interpreter shutdown contextlib itself may be gone)
            self.close()
        except Exception:
            pass
