"""What every in-process engine shares: loading once behind a lock, one generation at a time, the
KV sequences kept per document, and the `Backend` interface over `generate`.

A subclass loads a tokenizer and a model (`_load`), opens KV sequences (`_new_sequence`) and
says which exceptions mean "this generation failed" (`_failures`); the decode loop itself is
`server.engines.decode`, the same for every engine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from server.backends.base import BackendRequest, BackendResult
from server.engines.decode import (
    PREFILL_CHUNK,
    DecodeRequest,
    GenerationResult,
    Guide,
    KVSequence,
    VocabIndex,
    decode,
)
from server.errors import CodeparrotError, GenerationError, ModelLoadError
from server.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]

# Cached (tokens, KV) sequences kept at once: one per open document being typed in; each costs
# 2 x layers x tokens x width numbers (~75 MB for a 12x768 model at 1k tokens in float32).
MAX_CACHED_SEQUENCES = 4
# More threads than this slows down the small matmuls of one-token decode steps.
MAX_THREADS = 8
THREADS_ENV = "CODEPARROT_THREADS"


def default_threads() -> int:
    """Threads for one-token decode steps (torch intra-op, llama.cpp `n_threads`):
    `CODEPARROT_THREADS`, else half the CPUs we may run on (≤ 8).

    Half, because an editor's machine is never idle and OpenMP threads collapse when any core
    is busy: measured here (2 cores, shared), a 111M model decoded at 33 ms/token with one
    thread and 325 ms/token with two. Half the logical CPUs is also the physical cores on SMT.
    """
    override = os.environ.get(THREADS_ENV, "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available // 2, MAX_THREADS))


class BaseEngine:
    """A tokenizer + model for one `Settings.model_key()`; thread-safe load and generate."""

    name = "base"  # "torch" or "llama": what the log and `codeparrot/stats` call the engine

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.eos_id: int | None = None
        self.max_positions = 1024
        self.format = ""  # the weights' format as loaded (float32, bf16, int8, q8_0, f16 ...)
        self.prefill_chunk = PREFILL_CHUNK  # prompt tokens per evaluation between cancel checks
        self._tokenizer: Any = None
        self._ready = False
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # one generation at a time: the model and sequences are shared
        self._sequences: OrderedDict[str, KVSequence] = OrderedDict()
        self._stop_ids: set[int] = set()
        self._vocab_index: VocabIndex | None = None  # built on the first healed request
        # Models trained with a BOS before every text (Gemma, Llama) see one before every prompt;
        # GPT-2-style models (the shipped one) have none. Set by `_load`.
        self.bos_first: int | None = None

    # -- loading -------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._ready

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise ModelLoadError("The model is not loaded yet.")
        return self._tokenizer

    def load(self, progress: Progress | None = None) -> None:
        """Load tokenizer and model once; concurrent callers wait for the first one."""
        if self._ready:
            return
        with self._load_lock:
            if self._ready:
                return
            report: Progress = progress or (lambda _msg, _pct: None)
            try:
                self._load(report)
            except CodeparrotError:
                raise
            except Exception as exc:  # transformers/peft/torch/llama.cpp raise many types
                log.exception("model load failed")
                raise ModelLoadError(
                    f"Could not load model {self.settings.model or 'default'!r}: {exc}"
                ) from exc
            self._ready = True  # last: `loaded` flips only once everything is ready

    def _load(self, report: Progress) -> None:
        raise NotImplementedError

    def _finish_load(self, tokenizer: Any) -> None:
        """Tokenizer-derived state every engine needs (called by `_load`)."""
        # Take eos from the tokenizer, not the config (CodeParrot's config names an id beyond its vocab).
        self.eos_id = tokenizer.eos_token_id
        self._stop_ids = {i for i in tokenizer.all_special_ids if i is not None}
        self._tokenizer = tokenizer

    def describe(self) -> dict[str, Any]:
        """What runs: for the log and `codeparrot/stats`."""
        return {"name": self.name, "format": self.format}

    # -- generation ----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def _new_sequence(self, name: str) -> KVSequence:
        raise NotImplementedError

    def _drop_sequence(self, name: str) -> None:
        self._sequences.pop(name, None)

    def _failures(self) -> tuple[type[BaseException], ...]:
        """Exceptions that end one generation (the sequence is dropped), not the server."""
        return (RuntimeError, MemoryError)

    def reset_cache(self, sequence: str | None = None) -> None:
        """Forget cached sequences (all, or one key's)."""
        with self._gen_lock:
            for key in list(self._sequences) if sequence is None else [sequence]:
                self._drop_sequence(key)

    def generate(
        self,
        input_ids: list[int],
        *,
        max_new_tokens: int,
        stop: Callable[[str], bool] | None = None,
        cancel: threading.Event | None = None,
        sequence: str = "",
        heal: str = "",
        guide: Guide | None = None,
    ) -> GenerationResult:
        """Greedy continuation of `input_ids` (see `server.engines.decode.decode`), reusing the
        KV sequence kept under `sequence` from the previous request."""
        self.load()
        if self.bos_first is not None and (not input_ids or input_ids[0] != self.bos_first):
            input_ids = [self.bos_first, *input_ids]
        if not input_ids:
            raise GenerationError("Empty prompt: nothing to continue.")
        if min(input_ids) < 0 or max(input_ids) >= self.vocab_size:
            raise GenerationError("Prompt contains token ids outside the model's vocabulary.")
        with self._gen_lock:
            try:
                return self._generate(list(input_ids), max_new_tokens, stop, cancel, sequence, heal, guide)
            except self._failures() as exc:  # torch.OutOfMemoryError is a RuntimeError
                self._drop_sequence(sequence)
                self._after_failure()
                log.warning("generation failed: %s", exc)
                raise GenerationError(
                    f"Generation failed ({type(exc).__name__}); the cache was reset."
                ) from exc

    def _after_failure(self) -> None:
        """Release what a failed generation may have left (a GPU's cached blocks)."""

    def _generate(
        self,
        ids: list[int],
        max_new_tokens: int,
        stop: Callable[[str], bool] | None,
        cancel: threading.Event | None,
        sequence: str,
        heal: str,
        guide: Guide | None,
    ) -> GenerationResult:
        max_new_tokens = max(0, min(max_new_tokens, self.max_positions - 1))
        room = self.max_positions - max_new_tokens
        if len(ids) > room:  # keep the end of the prompt (the cursor side); positions shift, so no reuse
            ids = ids[-room:]
            self._drop_sequence(sequence)
        if max_new_tokens == 0 or (cancel is not None and cancel.is_set()):
            return GenerationResult("", len(ids), 0, 0, cancelled=max_new_tokens > 0)
        seq = self._sequences.pop(sequence, None)
        if seq is None:
            while len(self._sequences) >= MAX_CACHED_SEQUENCES:  # the least recent document's goes
                self._drop_sequence(next(iter(self._sequences)))
            seq = self._new_sequence(sequence)
        self._sequences[sequence] = seq  # most recent last
        index = self._healing_index() if heal else None
        request = DecodeRequest(ids, max_new_tokens, stop, cancel, heal, guide)
        return decode(
            seq, request, tokenizer=self.tokenizer, stop_ids=self._stop_ids, index=index, chunk=self.prefill_chunk
        )

    def _healing_index(self) -> VocabIndex:
        if self._vocab_index is None:
            self._vocab_index = VocabIndex(self.tokenizer, self._stop_ids)
        return self._vocab_index

    def complete(self, request: BackendRequest) -> BackendResult:
        """The `server.backends.Backend` interface, in process: the request a remote engine gets
        (text before/after the cursor, stop strings, a token limit, a cancel event), with token
        healing. The `Completer` drives `generate` directly instead, for what only an in-process
        engine can do (KV reuse per document, workspace mixing, copy drafts)."""
        from server.prompt import build_prompt

        start = time.perf_counter()
        self.load()
        budget = max(16, self.max_positions - request.max_tokens)
        prompt = build_prompt(
            self.tokenizer, request.prompt, request.suffix or "", budget, heal=True, fim=request.suffix is not None
        )
        stops = [s for s in request.stop if s]

        def stop(text: str) -> bool:
            if any(s in text for s in stops):
                return True
            return request.stop_check is not None and request.stop_check(text)

        result = self.generate(
            prompt.input_ids, max_new_tokens=request.max_tokens, stop=stop, cancel=request.cancel, heal=prompt.heal
        )
        text = result.text
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]  # OpenAI semantics: the stop string is not part of the answer
        ms = (time.perf_counter() - start) * 1000.0
        if result.cancelled:
            return BackendResult("", cancelled=True, ms=ms, finish_reason="cancelled")
        reason = "length" if cut < 0 and result.new_tokens >= request.max_tokens else "stop"
        return BackendResult(text, ms=ms, finish_reason=reason)
