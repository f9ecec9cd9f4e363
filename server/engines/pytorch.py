"""The model engine: lazy loading behind a lock, and greedy generation that reuses its KV cache.

Generation is a hand-written greedy loop over a KV cache (`server.gpt2.KVCache` for plain GPT-2
checkpoints, which run without transformers; transformers' `DynamicCache` for the rest) rather
than `model.generate`: we need (1) a cancellation check between every two tokens (a superseded
keystroke must stop within one token), (2) the cache handed from one request to the next,
cropped to the longest common token prefix, including the tokens generated last time
(typed-ahead text matches them), and (3) a stop check on the decoded text after each token.
`generate` exposes none of these together, and the loop is ~30 lines. It also does token healing (see `server.context`): the
first tokens are picked among those that spell the text the prompt left out.
"""

from __future__ import annotations

import bisect
import inspect
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from server.backends.base import BackendRequest, BackendResult
from server.errors import CodeparrotError, GenerationError, ModelLoadError
from server.models import ModelSource, resolve_model
from server.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]


class Guide(Protocol):
    """Reshapes each step's scores, and may propose copied tokens to verify (`NgramGuide`)."""

    def __call__(self, generated: list[int], logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """(generated ids, logits, the ids token healing allows at this step or None) -> scores."""
        ...

    def draft(self, generated: list[int], limit: int) -> list[int]:
        """Up to `limit` tokens likely to follow `generated` ([] for none)."""
        ...


# Cached (tokens, KV) sequences kept at once: one per open document being typed in; each
# costs 2 x layers x tokens x width floats (~75 MB for a 12x768 model at 1k tokens).
MAX_CACHED_SEQUENCES = 4
# More threads than this slows down the small matmuls of one-token decode steps.
MAX_TORCH_THREADS = 8
THREADS_ENV = "CODEPARROT_THREADS"
# "0": load with transformers' AutoTokenizer and modeling code, not `server.tokenizer` and
# `server.gpt2` (to compare; tests check the two agree).
NATIVE_ENV = "CODEPARROT_NATIVE"
# Prompt tokens per forward pass in a prefill: big enough to keep matmuls efficient, small
# enough (~0.3 s for a 111M model on 2 busy cores) that a cancel is noticed quickly.
PREFILL_CHUNK = 128


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    prompt_tokens_computed: int
    new_tokens: int
    cancelled: bool
    token_ids: list[int] = field(default_factory=list)  # the generated ids (healed start included)
    drafted: int = 0  # copied tokens proposed by the guide and verified (see `Guide.draft`)
    draft_accepted: int = 0  # of those, the ones kept: tokens that cost no forward pass of their own


@dataclass
class _CachedSequence:
    ids: list[int]  # exactly the tokens whose keys/values are in `cache`
    cache: Any  # server.gpt2.KVCache, or transformers.DynamicCache


class VocabIndex:
    """Token texts of a tokenizer, sorted so that the tokens starting with a given text are a range.

    Special tokens and tokens that decode to a partial UTF-8 sequence are left out.
    """

    CACHE = 256  # texts remembered: typing a word asks for the same ones again

    def __init__(self, tokenizer: Any, skip: set[int]) -> None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False)
        pairs = sorted((t, i) for i, t in enumerate(texts) if t and "\ufffd" not in t and i not in skip)
        self.texts: list[str] = texts
        self._sorted = [t for t, _ in pairs]
        self._ids = [i for _, i in pairs]
        self._by_text: dict[str, list[int]] = {}
        for t, i in pairs:
            self._by_text.setdefault(t, []).append(i)
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()

    def starting_with(self, text: str) -> torch.Tensor:
        """Ids of the tokens whose text starts with `text`; if there are none, of the tokens
        whose text is a non-empty part of its start (to spell it in several steps)."""
        hit = self._memo.get(text)
        if hit is not None:
            self._memo.move_to_end(text)
            return hit
        lo = bisect.bisect_left(self._sorted, text)
        hi = bisect.bisect_left(self._sorted, text + "\U0010ffff")
        found = self._ids[lo:hi]
        if not found:
            found = [i for k in range(1, len(text)) for i in self._by_text.get(text[:k], ())]
        ids = torch.tensor(found, dtype=torch.long)
        self._memo[text] = ids
        while len(self._memo) > self.CACHE:
            self._memo.popitem(last=False)
        return ids


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


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


def default_threads() -> int:
    """Torch intra-op threads: `CODEPARROT_THREADS`, else half the CPUs we may run on (≤ 8).

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
    return max(1, min(available // 2, MAX_TORCH_THREADS))


class Engine:
    """Model + tokenizer for one `Settings.model_key()`; thread-safe load and generate."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source: ModelSource | None = None
        self.device = "cpu"
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # one generation at a time: the model and caches are shared
        self._sequences: OrderedDict[str, _CachedSequence] = OrderedDict()
        self._stop_ids: set[int] = set()
        self.eos_id: int | None = None
        self.max_positions = 1024
        self._keeps_logits = False
        self._cache_arg = "cache"
        self._vocab_index: VocabIndex | None = None  # built on the first healed request

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise ModelLoadError("The model is not loaded yet.")
        return self._tokenizer

    @property
    def model(self) -> Any:
        if self._model is None:
            raise ModelLoadError("The model is not loaded yet.")
        return self._model

    def load(self, progress: Progress | None = None) -> None:
        """Load tokenizer and model once; concurrent callers wait for the first one."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            report: Progress = progress or (lambda _msg, _pct: None)
            try:
                self._load(report)
            except CodeparrotError:
                raise
            except Exception as exc:  # transformers/peft/torch raise many types
                log.exception("model load failed")
                raise ModelLoadError(
                    f"Could not load model {self.settings.model or 'default'!r}: {exc}"
                ) from exc

    def _load(self, report: Progress) -> None:
        s = self.settings
        report("Resolving model", 0)
        source = resolve_model(s.model, s.adapter)
        device = pick_device(s.device, s.quantize)
        quantize = resolve_quantize(s.quantize, device)
        torch.set_num_threads(default_threads())
        report(f"Loading tokenizer from {source.path.name}", 10)
        tok_dir = (
            source.adapter
            if source.adapter and (source.adapter / "tokenizer.json").is_file()
            else source.path
        )
        tokenizer = _load_tokenizer(tok_dir)
        report("Loading weights", 30)
        model: Any = _load_native(source, quantize)
        if model is None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(
                str(source.path), use_safetensors=True, trust_remote_code=False, dtype=torch.float32
            )
        if source.adapter is not None:
            report("Applying LoRA adapter", 60)
            model = _apply_adapter(model, source)
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
        # Take eos from the tokenizer, not the config (CodeParrot's config names an id beyond its vocab).
        self.eos_id = tokenizer.eos_token_id
        self._stop_ids = {i for i in tokenizer.all_special_ids if i is not None}
        # Only the last position's logits are used: skipping the LM head for the rest of a long
        # prompt saves vocab x width x prompt_len multiply-adds (~17 GFLOP for 700 tokens here).
        forward_params = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward_params  # then only the rows needed are computed
        self._cache_arg = "cache" if "cache" in forward_params else "past_key_values"
        self._tokenizer, self.source, self.device = tokenizer, source, device
        self._model = model  # last: `loaded` flips only once everything is ready
        report("Model ready", 100)
        log.info(
            "loaded %s (%s) on %s, quantize=%s%s, %s",
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

    def reset_cache(self, cache_key: str | None = None) -> None:
        """Forget cached sequences (all, or one key's)."""
        with self._gen_lock:
            if cache_key is None:
                self._sequences.clear()
            else:
                self._sequences.pop(cache_key, None)

    def complete(self, request: BackendRequest) -> BackendResult:
        """The `server.backends.Backend` interface, in process: the request a remote engine gets
        (text before/after the cursor, stop strings, a token limit, a cancel event), with token
        healing. The `Completer` drives `generate` directly instead, for what only an in-process
        engine can do (KV reuse per document, workspace mixing, copy drafts)."""
        from server.context import build_prompt

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

    def generate(
        self,
        input_ids: list[int],
        *,
        max_new_tokens: int,
        stop: Callable[[str], bool] | None = None,
        cancel: threading.Event | None = None,
        cache_key: str = "",
        heal: str = "",
        guide: Guide | None = None,
    ) -> GenerationResult:
        """Greedy continuation of `input_ids`; see the module docstring for why it is hand-written.

        With `heal` (the text of the tokens the prompt stopped short of), the output must start
        with it, and `GenerationResult.text` is what follows it; tokens that lie wholly inside
        `heal` do not count against `max_new_tokens`. `guide(generated_ids, logits, allowed)` may
        reshape each step's scores (workspace ∞-gram mixing, `server.retrieval.mixing`) before the
        argmax; `allowed` is the ids healing still permits (None once `heal` is spelled).
        """
        self.load()
        if not input_ids:
            raise GenerationError("Empty prompt: nothing to continue.")
        vocab = int(self.model.get_input_embeddings().num_embeddings)
        if min(input_ids) < 0 or max(input_ids) >= vocab:
            raise GenerationError("Prompt contains token ids outside the model's vocabulary.")
        with self._gen_lock:
            try:
                return self._generate(list(input_ids), max_new_tokens, stop, cancel, cache_key, heal, guide)
            except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
                self._sequences.pop(cache_key, None)
                if self.device == "cuda":
                    torch.cuda.empty_cache()
                log.warning("generation failed: %s", exc)
                raise GenerationError(
                    f"Generation failed ({type(exc).__name__}); the cache was reset."
                ) from exc

    def _generate(
        self,
        ids: list[int],
        max_new_tokens: int,
        stop: Callable[[str], bool] | None,
        cancel: threading.Event | None,
        cache_key: str,
        heal: str,
        guide: Guide | None = None,
    ) -> GenerationResult:
        max_new_tokens = max(0, min(max_new_tokens, self.max_positions - 1))
        room = self.max_positions - max_new_tokens
        if len(ids) > room:  # keep the end of the prompt (the cursor side); positions shift, so no reuse
            ids = ids[-room:]
            self._sequences.pop(cache_key, None)
        prompt_tokens = len(ids)
        if max_new_tokens == 0 or (cancel is not None and cancel.is_set()):
            return GenerationResult("", prompt_tokens, 0, 0, cancelled=max_new_tokens > 0)

        entry = self._sequences.pop(cache_key, None)
        reuse = 0
        if entry is not None:
            # Keep at least the last prompt token to recompute: its logits give the first new token.
            reuse = min(_common_prefix(entry.ids, ids), len(ids) - 1)
        if reuse > 0 and entry is not None and getattr(entry.cache, "is_croppable", True):
            cache = entry.cache
            # transformers 5 crops by a negative count: drop everything after the common prefix.
            cache.crop(reuse - len(entry.ids))
        else:
            reuse, cache = 0, self._new_cache()
        seq = ids[:reuse]
        feed = ids[reuse:]
        computed = len(feed)

        generated: list[int] = []
        text = ""
        cancelled = False
        # Token healing: the output must start with `heal`. Each step picks the best token that
        # starts with what is left of it (the prompt's own tokens always qualify, and so does a
        # longer one such as ` chance` for ` c`); only when no token does (an unknown word) does
        # it spell `heal` in parts. Offering the parts always would lead small models astray
        # (measured on the tests' trained tiny model: 100 vs 79 of 370 mid-word cuts exact).
        index = self._healing_index() if heal else None
        pending = heal  # what the output has not spelled yet
        forced = 0  # generated tokens that lie wholly inside `heal` (they add no new text)
        with torch.inference_mode():
            # Long prompts go in chunks with a cancel check between them, so that a superseded
            # request stops soon even in a cold prefill; what was computed stays in the cache.
            while len(feed) > PREFILL_CHUNK:
                chunk, feed = feed[:PREFILL_CHUNK], feed[PREFILL_CHUNK:]
                cache = self._forward(chunk, cache)[1]
                seq.extend(chunk)
                if cancel is not None and cancel.is_set():
                    self._remember(cache_key, _CachedSequence(seq, cache))
                    return GenerationResult("", prompt_tokens, len(seq) - reuse, 0, cancelled=True)
            draft: list[int] = []  # copied tokens fed after feed[0], verified by this forward
            drafted = accepted_drafts = 0
            done = False
            while not done:
                logits_out, cache = self._forward(feed, cache, rows=len(draft) + 1)
                seq.extend(feed)
                rows = logits_out[0, -(len(draft) + 1) :]
                for j in range(len(draft) + 1):
                    # Row j holds the scores after feed[j]: what plain decoding would see there.
                    logits = rows[j]
                    allowed = index.starting_with(pending) if pending and index is not None else None
                    if guide is not None:
                        logits = guide(generated, logits, allowed)
                    if allowed is not None and index is not None:
                        if allowed.numel() == 0:  # nothing spells it (cannot happen for ASCII `heal`)
                            next_id = -1
                        else:
                            next_id = int(allowed[int(logits[allowed.to(logits.device)].argmax())])
                            piece = index.texts[next_id]
                            forced += len(piece) <= len(pending)
                            pending = pending[len(piece) :] if len(piece) < len(pending) else ""
                    else:
                        next_id = int(logits.argmax())
                    go_on = next_id >= 0 and next_id not in self._stop_ids
                    if go_on:
                        generated.append(next_id)
                        if not pending:  # `heal` is spelled: from here on the text is the completion
                            decoded = self.tokenizer.decode(generated, skip_special_tokens=True)
                            if not decoded.startswith(heal):  # cannot happen for ASCII `heal`: never emit a wrong start
                                log.debug("healed output %r does not start with %r", decoded, heal)
                                go_on = False
                            else:
                                text = decoded[len(heal) :]
                                if len(generated) - forced >= max_new_tokens or (stop is not None and stop(text)):
                                    go_on = False
                        if go_on and cancel is not None and cancel.is_set():
                            cancelled, go_on = True, False
                    accepted = j < len(draft) and next_id == draft[j]
                    accepted_drafts += accepted
                    if accepted and go_on:
                        continue  # draft[j] is in the cache already: check the next row
                    # The rest of the draft was fed but not chosen: out of the cache it goes.
                    unused = len(draft) - j - (1 if accepted else 0)
                    if unused:
                        cache.crop(-unused)
                        del seq[-unused:]
                    if not go_on:
                        done = True
                    else:
                        limit = max_new_tokens - (len(generated) - forced)
                        draft = guide.draft(generated, limit) if guide is not None and not pending else []
                        drafted += len(draft)
                        feed = [next_id, *draft]
                    break
        self._remember(cache_key, _CachedSequence(seq, cache))
        return GenerationResult(
            text, prompt_tokens, computed, len(generated), cancelled, generated, drafted, accepted_drafts
        )

    def _healing_index(self) -> VocabIndex:
        if self._vocab_index is None:
            self._vocab_index = VocabIndex(self.tokenizer, self._stop_ids)
        return self._vocab_index

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

    def _remember(self, key: str, entry: _CachedSequence) -> None:
        self._sequences[key] = entry
        self._sequences.move_to_end(key)
        while len(self._sequences) > MAX_CACHED_SEQUENCES:
            self._sequences.popitem(last=False)


def _native_allowed() -> bool:
    return os.environ.get(NATIVE_ENV, "").strip() != "0"


def _load_tokenizer(directory: Path) -> Any:
    """`server.tokenizer.FastTokenizer` when transformers' wrapper would only call the Rust
    tokenizer (its import is ~0.85 s of a cold start), else transformers' AutoTokenizer."""
    if _native_allowed():
        from server.tokenizer import load_fast

        fast = load_fast(directory)
        if fast is not None:
            return fast
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)


def _load_native(source: ModelSource, quantize: str) -> Any:
    """The model on `server.gpt2` (fast import, lean decode) when it is a plain GPT-2 without an
    adapter or int8 (both need transformers' modules); None otherwise, or when NATIVE_ENV is 0."""
    if source.adapter is not None or quantize == "int8" or not _native_allowed():
        return None
    from server.gpt2 import load_native

    return load_native(source.path)


def _apply_adapter(model: Any, source: ModelSource) -> Any:
    """Apply a peft LoRA adapter and merge it into the base weights (no adapter cost per token)."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelLoadError(
            "LoRA adapters need the `peft` package: pip install 'codeparrot-lsp[train]'."
        ) from exc
    peft_model = PeftModel.from_pretrained(model, str(source.adapter), is_trainable=False)
    return peft_model.merge_and_unload()
