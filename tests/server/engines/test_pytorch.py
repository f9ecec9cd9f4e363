"""Engine: greedy generation, KV-cache reuse across requests, cancellation, stops, precisions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from server.engines.pytorch import TorchEngine
from server.errors import GenerationError, ModelNotFoundError
from server.settings import Settings

BASE = "function add(a, b) {\n  return a + b;\n}\nconst items = [1, 2, 3];\n"
TYPED = "for (let i = 0; i < items.length; i++) {"


def ids_of(engine: TorchEngine, text: str) -> list[int]:
    return list(engine.tokenizer(text)["input_ids"])


def count_forwards(engine: TorchEngine) -> tuple[list[int], Any]:
    calls = [0]

    def hook(_module: Any, _args: Any) -> None:
        calls[0] += 1

    return calls, engine.model.register_forward_pre_hook(hook)


def test_greedy_is_deterministic_across_engines(engine: TorchEngine, tiny_model_dir: Path) -> None:
    ids = ids_of(engine, BASE)
    first = engine.generate(ids, max_new_tokens=12, sequence="det-1")
    again = engine.generate(ids, max_new_tokens=12, sequence="det-2")
    other = TorchEngine(Settings(model=str(tiny_model_dir), device="cpu"))
    third = other.generate(ids, max_new_tokens=12)  # generate loads lazily
    assert first.text == again.text == third.text
    assert first.new_tokens == 12 and first.text
    assert first.prompt_tokens == first.prompt_tokens_computed == len(ids)
    assert not first.cancelled


def test_typing_reuses_cache_and_matches_cold_generation(engine: TorchEngine) -> None:
    """Each keystroke recomputes only the changed tail, with the same text a cold engine gives."""
    first = engine.generate(ids_of(engine, BASE), max_new_tokens=8, sequence="typing")
    assert first.prompt_tokens_computed == first.prompt_tokens
    for n in range(1, len(TYPED) + 1):
        ids = ids_of(engine, BASE + TYPED[:n])
        warm = engine.generate(ids, max_new_tokens=8, sequence="typing")
        cold = engine.generate(ids, max_new_tokens=8, sequence=f"cold-{n}")
        assert warm.text == cold.text, f"cache reuse changed the output after {TYPED[:n]!r}"
        assert cold.prompt_tokens_computed == len(ids)
        assert warm.prompt_tokens == len(ids)
        assert 1 <= warm.prompt_tokens_computed <= 3 < warm.prompt_tokens
    engine.reset_cache()


def test_edit_in_the_middle_recomputes_from_the_change(engine: TorchEngine) -> None:
    before = ids_of(engine, BASE + TYPED)
    engine.generate(before, max_new_tokens=4, sequence="mid")
    edited_text = BASE.replace("[1, 2, 3]", "[4, 5, 6]") + TYPED
    edited = ids_of(engine, edited_text)
    common = next(i for i, (a, b) in enumerate(zip(before, edited, strict=False)) if a != b)
    warm = engine.generate(edited, max_new_tokens=6, sequence="mid")
    cold = engine.generate(edited, max_new_tokens=6, sequence="mid-cold")
    assert warm.prompt_tokens_computed == len(edited) - common
    assert warm.text == cold.text


def test_same_prompt_again_recomputes_only_last_token(engine: TorchEngine) -> None:
    ids = ids_of(engine, BASE + TYPED)
    engine.generate(ids, max_new_tokens=4, sequence="again")
    calls, handle = count_forwards(engine)
    try:
        again = engine.generate(ids, max_new_tokens=4, sequence="again")
    finally:
        handle.remove()
    assert again.prompt_tokens_computed == 1
    assert calls[0] == 4  # one forward for the last prompt token, then one per further new token


def cancelling_after(n: int, cancel: threading.Event) -> Callable[[str], bool]:
    """A stop check that never stops but sets `cancel` when it is called the `n`th time (after
    the `n`th new token), as a superseding keystroke would."""
    seen: list[str] = []

    def stop(text: str) -> bool:
        seen.append(text)
        if len(seen) == n:
            cancel.set()
        return False

    return stop


def test_cancel_from_stop_callback_stops_within_one_token(engine: TorchEngine) -> None:
    cancel = threading.Event()
    stop = cancelling_after(3, cancel)
    calls, handle = count_forwards(engine)
    try:
        result = engine.generate(
            ids_of(engine, BASE), max_new_tokens=30, stop=stop, cancel=cancel, sequence="cancel"
        )
    finally:
        handle.remove()
    assert result.cancelled
    assert result.new_tokens == 3
    assert calls[0] == 3  # no forward pass after the event was set


def test_cancel_from_another_thread_stops_within_one_token(engine: TorchEngine) -> None:
    cancel = threading.Event()
    calls = [0]
    calls_when_set: list[int] = []

    def hook(_module: Any, _args: Any) -> None:
        calls[0] += 1
        if calls[0] == 5:
            setter = threading.Thread(target=cancel.set)
            setter.start()
            setter.join()
            calls_when_set.append(calls[0])

    handle = engine.model.register_forward_pre_hook(hook)
    try:
        result = engine.generate(ids_of(engine, BASE), max_new_tokens=40, cancel=cancel, sequence="thr")
    finally:
        handle.remove()
    assert result.cancelled
    assert calls[0] - calls_when_set[0] == 0  # the forward in flight finishes, nothing after it
    assert result.new_tokens == 5


def test_cancel_during_chunked_prefill_keeps_the_computed_part(
    engine: TorchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "prefill_chunk", 8)
    ids = ids_of(engine, BASE + TYPED)
    assert len(ids) > 24
    cancel = threading.Event()
    calls = [0]

    def hook(_module: Any, _args: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            cancel.set()

    handle = engine.model.register_forward_pre_hook(hook)
    try:
        result = engine.generate(ids, max_new_tokens=8, cancel=cancel, sequence="prefill")
    finally:
        handle.remove()
    assert result.cancelled and result.new_tokens == 0
    assert calls[0] == 2 and result.prompt_tokens_computed == 16
    resumed = engine.generate(ids, max_new_tokens=8, sequence="prefill")
    assert resumed.prompt_tokens_computed == len(ids) - 16
    cold = engine.generate(ids, max_new_tokens=8, sequence="prefill-cold")
    assert resumed.text == cold.text


def test_already_cancelled_computes_nothing(engine: TorchEngine) -> None:
    cancel = threading.Event()
    cancel.set()
    result = engine.generate(ids_of(engine, BASE), max_new_tokens=8, cancel=cancel)
    assert result.cancelled and result.new_tokens == 0 and result.prompt_tokens_computed == 0


def test_stop_callback_ends_generation(engine: TorchEngine) -> None:
    texts: list[str] = []

    def stop(text: str) -> bool:
        texts.append(text)
        return len(text) >= 6

    result = engine.generate(ids_of(engine, BASE), max_new_tokens=50, stop=stop, sequence="stop")
    assert len(result.text) >= 6 and not result.cancelled
    assert result.new_tokens == len(texts) < 50
    assert all(len(t) < 6 for t in texts[:-1])
    assert texts[-1] == result.text


@pytest.fixture(scope="module")
def eos_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with weights edited so that EOS is always the greedy choice."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("eos-model")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, use_safetensors=True)
    with torch.no_grad():
        wte = model.get_input_embeddings().weight
        wte[tok.eos_token_id] *= 50  # tied lm_head: the final state below points at this row
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(wte[tok.eos_token_id])
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def test_eos_stops_generation(eos_model_dir: Path) -> None:
    eng = TorchEngine(Settings(model=str(eos_model_dir), device="cpu"))
    ids = ids_of_loaded(eng, BASE)
    result = eng.generate(ids, max_new_tokens=20)
    assert result.new_tokens == 0 and result.text == "" and not result.cancelled


def ids_of_loaded(eng: TorchEngine, text: str) -> list[int]:
    eng.load()
    return ids_of(eng, text)


@pytest.mark.parametrize("quantize", ["bf16", "int8"])
def test_reduced_precision_generates(tiny_model_dir: Path, quantize: str) -> None:
    from transformers.pytorch_utils import Conv1D

    eng = TorchEngine(Settings(model=str(tiny_model_dir), device="cpu", quantize=quantize))
    ids = ids_of_loaded(eng, BASE)
    result = eng.generate(ids, max_new_tokens=10, sequence="q")
    assert result.new_tokens == 10 and isinstance(result.text, str) and result.text
    warm = eng.generate(ids_of(eng, BASE + "f"), max_new_tokens=10, sequence="q")
    assert warm.prompt_tokens_computed <= 2
    modules = list(eng.model.modules())
    if quantize == "int8":
        assert not any(isinstance(m, Conv1D) for m in modules)
        assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in modules)
    else:
        assert next(eng.model.parameters()).dtype == torch.bfloat16


def test_quantize_auto_is_bf16_only_on_a_cpu_with_bf16_instructions(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.engines.pytorch as engine_module

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(engine_module, "CPUINFO", str(cpuinfo))
    assert not engine_module.cpu_has_native_bf16()  # unreadable: no
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not engine_module.cpu_has_native_bf16()
    assert engine_module.resolve_quantize("auto", "cpu") == "none"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\nbugs\t\t: spectre\n")
    assert engine_module.cpu_has_native_bf16()
    assert engine_module.resolve_quantize("auto", "cpu") == "bf16"
    assert engine_module.resolve_quantize("auto", "cuda") == "none"  # GPUs keep float32
    assert [engine_module.resolve_quantize(q, "cpu") for q in ("none", "int8", "bf16")] == ["none", "int8", "bf16"]
    assert Settings().quantize == "auto"
    eng = TorchEngine(Settings(model=str(tiny_model_dir), device="cpu"))
    eng.load()
    assert next(eng.model.parameters()).dtype == torch.bfloat16
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2\n")
    eng = TorchEngine(Settings(model=str(tiny_model_dir), device="cpu"))
    eng.load()
    assert next(eng.model.parameters()).dtype == torch.float32


def test_long_prompt_is_left_truncated_to_model_positions(engine: TorchEngine) -> None:
    ids = ids_of(engine, BASE * 60)
    assert len(ids) > engine.max_positions
    result = engine.generate(ids, max_new_tokens=8, sequence="long")
    assert result.prompt_tokens == engine.max_positions - 8
    cold = engine.generate(ids[-(engine.max_positions - 8) :], max_new_tokens=8, sequence="long-cold")
    assert cold.text == result.text


def test_out_of_memory_becomes_generation_error_and_drops_cache(engine: TorchEngine) -> None:
    ids = ids_of(engine, BASE + TYPED)
    engine.generate(ids, max_new_tokens=4, sequence="oom")

    def fail(_module: Any, _args: Any) -> None:
        raise torch.OutOfMemoryError("out of memory (test)")

    handle = engine.model.register_forward_pre_hook(fail)
    try:
        with pytest.raises(GenerationError):
            engine.generate(ids, max_new_tokens=4, sequence="oom")
    finally:
        handle.remove()
    after = engine.generate(ids, max_new_tokens=4, sequence="oom")
    assert after.prompt_tokens_computed == len(ids)  # the cache was dropped, not half-updated


def test_bad_prompts_raise_generation_error(engine: TorchEngine) -> None:
    with pytest.raises(GenerationError):
        engine.generate([], max_new_tokens=4)
    with pytest.raises(GenerationError):
        engine.generate([len(engine.tokenizer) + 10_000], max_new_tokens=4)


def test_concurrent_loads_load_once(tiny_model_dir: Path) -> None:
    eng = TorchEngine(Settings(model=str(tiny_model_dir), device="cpu"))
    messages: list[tuple[str, int | None]] = []
    threads = [
        threading.Thread(target=eng.load, kwargs={"progress": lambda m, p: messages.append((m, p))})
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert eng.loaded
    assert [p for _, p in messages].count(100) == 1
    assert messages[0][1] == 0


def test_missing_model_fails_load_with_typed_error(tmp_path: Path) -> None:
    eng = TorchEngine(Settings(model=str(tmp_path / "nope"), device="cpu"))
    with pytest.raises(ModelNotFoundError):
        eng.load()
    assert not eng.loaded


# ----------------------------------------------------------------------------------------------
# token healing


@pytest.mark.parametrize("heal", ["re", " c", "i", "\n  "])
def test_healed_first_token_is_the_best_one_that_starts_with_heal(engine: TorchEngine, heal: str) -> None:
    """Checked against a brute-force scan of the whole vocabulary, not the engine's index."""
    ids = ids_of(engine, BASE + "const x = ")
    tok = engine.tokenizer
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([ids])).logits[0, -1]
    specials = set(tok.all_special_ids)
    candidates = [i for i in range(len(tok)) if i not in specials and tok.decode([i]).startswith(heal)]
    assert candidates, f"the tiny tokenizer has no token starting with {heal!r}"
    best = max(candidates, key=lambda i: float(logits[i]))

    result = engine.generate(ids, max_new_tokens=6, heal=heal, sequence=f"heal-{heal}")
    assert result.token_ids[0] == best
    full = tok.decode(result.token_ids)
    assert full == heal + result.text  # the healed part is spelled, then stripped
    # the token that only re-spells `heal` does not count against max_new_tokens
    assert result.new_tokens == 6 + (tok.decode([best]) == heal)


def test_unhealed_generation_is_unconstrained(engine: TorchEngine) -> None:
    ids = ids_of(engine, BASE + "const x = ")
    with torch.inference_mode():
        top = int(engine.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    assert engine.generate(ids, max_new_tokens=3, sequence="unhealed").token_ids[0] == top


def test_healed_typing_keeps_reusing_the_kv_cache(engine: TorchEngine) -> None:
    """Healing leaves the last token out of the prompt: typing a word keeps the cache valid."""
    from server.prompt import build_prompt

    word = "const total = items.reduce"
    computed = []
    for n in range(len("const total = "), len(word) + 1):
        prompt = build_prompt(engine.tokenizer, BASE + word[:n], "", 256, heal=True)
        result = engine.generate(prompt.input_ids, max_new_tokens=4, heal=prompt.heal, sequence="heal-typing")
        assert engine.tokenizer.decode(result.token_ids).startswith(prompt.heal)
        computed.append(result.prompt_tokens_computed)
    assert max(computed[1:]) <= 4, computed


def test_a_heal_no_token_starts_with_is_spelled_in_parts(engine: TorchEngine) -> None:
    tok = engine.tokenizer
    heal = " zqxItemsCount"
    assert not any(tok.decode([i]).startswith(heal) for i in range(len(tok)))
    result = engine.generate(ids_of(engine, BASE + "const q ="), max_new_tokens=3, heal=heal, sequence="parts")
    pieces = [tok.decode([i]) for i in result.token_ids]
    assert "".join(pieces).startswith(heal) and tok.decode(result.token_ids) == heal + result.text
    inside = 0
    spelled = ""
    for piece in pieces:
        if len(spelled + piece) > len(heal):
            break
        spelled += piece
        inside += 1
    assert inside >= 2 and result.new_tokens == 3 + inside


class DraftingGuide:
    """A guide that leaves the scores alone and proposes `proposal` (the true greedy continuation
    or a wrong one) after every token: only the verification decides what is kept."""

    def __init__(self, proposal: list[int]) -> None:
        self.proposal = proposal
        self.proposed = 0

    def __call__(self, generated: list[int], logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        return logits

    def draft(self, generated: list[int], limit: int) -> list[int]:
        n = len(generated)
        out = self.proposal[n : n + min(limit, 5)]
        self.proposed += len(out)
        return out


def test_copy_drafts_give_the_same_output_in_fewer_forward_passes(engine: TorchEngine) -> None:
    ids = ids_of(engine, BASE)
    plain = engine.generate(ids, max_new_tokens=16, sequence="plain")
    true = DraftingGuide(plain.token_ids)
    calls, handle = count_forwards(engine)
    try:
        drafted = engine.generate(ids, max_new_tokens=16, sequence="drafted", guide=true)
    finally:
        handle.remove()
    assert drafted.text == plain.text and drafted.token_ids == plain.token_ids
    assert true.proposed > 0 and calls[0] <= 1 + 16 // 3  # prefill + a forward per 1 + 5 accepted tokens
    assert drafted.drafted == drafted.draft_accepted == true.proposed
    # A wrong draft (every proposed token off by one) is rejected: same output, one token per pass.
    wrong = DraftingGuide([(t + 1) % len(engine.tokenizer) for t in plain.token_ids])
    rejected = engine.generate(ids, max_new_tokens=16, sequence="wrong", guide=wrong)
    assert rejected.text == plain.text and rejected.drafted > 0 and rejected.draft_accepted == 0
    # The rejected tokens left the KV cache (it holds exactly the tokens the engine remembers),
    # and continuing from it matches a cold engine.
    entry = engine._sequences["wrong"]
    assert entry.cache.get_seq_length() == len(entry.ids)
    longer = ids + plain.token_ids[:4]
    warm = engine.generate(longer, max_new_tokens=8, sequence="wrong")
    assert warm.prompt_tokens_computed < len(longer)
    assert warm.text == engine.generate(longer, max_new_tokens=8, sequence="cold-after-draft").text


def test_engine_is_a_backend_in_process(engine: TorchEngine) -> None:
    """`Engine.complete` takes the request a remote engine gets and answers like one."""
    from server.backends import Backend, BackendRequest
    from server.prompt import build_prompt

    backend: Backend = engine  # the Protocol, checked by mypy
    full = backend.complete(BackendRequest(BASE, 12))
    prompt = build_prompt(engine.tokenizer, BASE, "", 1000, heal=True, fim=False)
    direct = engine.generate(prompt.input_ids, max_new_tokens=12, heal=prompt.heal, sequence="direct")
    assert full.text == direct.text and full.finish_reason == "length" and full.ms > 0

    stop = full.text[3:5]  # a stop string inside the greedy continuation: cut before it
    cut = backend.complete(BackendRequest(BASE, 12, stop=[stop]))
    assert cut.text == full.text[: full.text.index(stop)] and cut.finish_reason == "stop"

    seen: list[str] = []
    checked = backend.complete(BackendRequest(BASE, 12, stop_check=lambda text: bool(seen.append(text)) or len(text) >= 4))
    assert full.text.startswith(checked.text) and len(checked.text) >= 4 and len(seen) < 12

    cancel = threading.Event()
    cancel.set()
    gone = backend.complete(BackendRequest(BASE, 12, cancel=cancel))
    assert gone.cancelled and gone.text == "" and gone.finish_reason == "cancelled"
