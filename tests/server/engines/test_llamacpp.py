"""The llama.cpp engine in process: the same greedy tokens as the torch engine, KV reuse while
typing, drafts verified in one evaluation, cancellation, healing and mixing through the real
Completer, the conversion cache, `.gguf` files with their own tokenizer, LoRA adapters, and
every way it can fail falling back to torch with a clear message.

Real llama.cpp (llama-cpp-python, built by `tests/engines/setup.sh`), never a mock: without it
these tests are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_wire import REPO, server_command, server_env
from lsprotocol import types
from pytest_lsp import client_capabilities, make_test_lsp_client
from test_models import adapter_dir  # noqa: F401 (a fixture: a real peft LoRA adapter)
from test_pytorch import BASE, TYPED, DraftingGuide, cancelling_after

from server.completion import Completer
from server.engines import load_engine
from server.engines.gguf_cache import content_key, gguf_for
from server.engines.llamacpp import LlamaEngine, LlamaSequence
from server.engines.pytorch import TorchEngine
from server.errors import ModelLoadError
from server.models import DEFAULT_MODEL_DIR, resolve_model
from server.settings import Settings

pytest.importorskip("llama_cpp", reason="the real engine: run `bash tests/engines/setup.sh`")

PROMPTS = (
    BASE,
    BASE + TYPED,
    "const express = require('express');\nconst app = express();\n\napp.get('/', (req, res) => {\n",
    "class Stack {\n  constructor() {\n    this.items = [];\n  }\n\n  push(item) {\n",
)


def ids_of(engine: Any, text: str) -> list[int]:
    return list(engine.tokenizer(text)["input_ids"])


@pytest.fixture(scope="module")
def f32(tiny_model_dir: Path) -> Settings:
    return Settings(model=str(tiny_model_dir), device="cpu", quantize="none")


@pytest.fixture(scope="module")
def torch_engine(f32: Settings) -> TorchEngine:
    engine = TorchEngine(f32)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def llama(f32: Settings) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(f32)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture
def evals(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of tokens of each llama.cpp evaluation, in order."""
    seen: list[int] = []
    evaluate = LlamaSequence.eval

    def counted(self: LlamaSequence, ids: list[int], rows: int) -> Any:
        seen.append(len(ids))
        return evaluate(self, ids, rows)

    monkeypatch.setattr(LlamaSequence, "eval", counted)
    return seen


def kv_tokens(engine: LlamaEngine, key: str) -> int:
    """Tokens llama.cpp holds for the sequence of `key` (its highest position + 1)."""
    seq = engine._sequences[key]
    assert isinstance(seq, LlamaSequence)
    return int(engine.lib.llama_memory_seq_pos_max(engine.memory, seq.seq_id)) + 1


def test_float32_greedy_tokens_equal_the_torch_engine(torch_engine: TorchEngine, llama: LlamaEngine) -> None:
    assert llama.describe()["name"] == "llama" and llama.format == "f32"
    assert llama.gguf is not None and llama.gguf.is_file()
    for n, text in enumerate(PROMPTS):
        ids = ids_of(torch_engine, text)
        assert ids == ids_of(llama, text)  # the same tokenizer, from the model dir
        expected = torch_engine.generate(ids, max_new_tokens=24, sequence=f"t{n}")
        got = llama.generate(ids, max_new_tokens=24, sequence=f"l{n}")
        assert got.token_ids == expected.token_ids and got.text == expected.text
        assert got.prompt_tokens_computed == len(ids) and got.new_tokens == 24
        assert got.prefill_ms > 0 and got.decode_ms_per_token is not None and got.decode_ms_per_token > 0


@pytest.mark.shipped_model
def test_shipped_model_f16_greedy_tokens_equal_the_torch_engine() -> None:
    """The shipped model as an f16 GGUF against torch in float32: the same tokens."""
    torch_engine = TorchEngine(Settings(device="cpu", quantize="none"))
    llama = LlamaEngine(Settings(device="cpu", quantize="bf16"))  # bf16 maps to f16 under llama.cpp
    llama.load()
    assert llama.format == "f16"
    for n, text in enumerate(PROMPTS):
        ids = ids_of(llama, text)
        expected = torch_engine.generate(ids, max_new_tokens=16, sequence=f"t{n}")
        got = llama.generate(ids, max_new_tokens=16, sequence=f"l{n}")
        assert got.text == expected.text, text
    llama.close()


@pytest.mark.shipped_model
def test_an_evaluation_longer_than_a_batch_is_split_with_the_same_result() -> None:
    engine = LlamaEngine(Settings(device="cpu"))
    engine.load()
    text = (REPO / "server" / "engines" / "decode.py").read_text()
    ids = ids_of(engine, text)[:900]  # > BATCH_TOKENS, < the model's 1024 positions
    chunked = engine.generate(ids, max_new_tokens=16, sequence="chunked")
    engine.prefill_chunk = 10_000  # the whole prompt in one evaluation: split into batches inside
    whole = engine.generate(ids, max_new_tokens=16, sequence="whole")
    assert whole.prompt_tokens_computed == len(ids) and whole.token_ids == chunked.token_ids
    engine.close()


def test_typing_one_character_evaluates_at_most_two_prompt_tokens(llama: LlamaEngine, evals: list[int]) -> None:
    first = llama.generate(ids_of(llama, BASE), max_new_tokens=8, sequence="typing")
    assert first.prompt_tokens_computed == first.prompt_tokens
    for n in range(1, len(TYPED) + 1):
        ids = ids_of(llama, BASE + TYPED[:n])
        evals.clear()
        warm = llama.generate(ids, max_new_tokens=8, sequence="typing")
        assert 1 <= warm.prompt_tokens_computed <= 2 < warm.prompt_tokens
        assert evals[0] == warm.prompt_tokens_computed  # what was evaluated, not only what was reported
        cold = llama.generate(ids, max_new_tokens=8, sequence="cold")
        llama.reset_cache("cold")
        assert warm.text == cold.text, f"KV reuse changed the output after {TYPED[:n]!r}"
        assert kv_tokens(llama, "typing") == len(llama._sequences["typing"].ids)


def test_documents_keep_their_own_sequences(llama: LlamaEngine) -> None:
    llama.reset_cache()
    a, b = ids_of(llama, PROMPTS[2]), ids_of(llama, PROMPTS[3])
    llama.generate(a, max_new_tokens=6, sequence="a.js")
    llama.generate(b, max_new_tokens=6, sequence="b.js")
    again = llama.generate(a, max_new_tokens=6, sequence="a.js")
    assert again.prompt_tokens_computed == 1  # b.js did not evict or overwrite a.js
    for n in range(6):  # more documents than sequences: the least recent go, nothing breaks
        llama.generate(ids_of(llama, f"// file {n}\n" + BASE), max_new_tokens=4, sequence=f"{n}.js")
    assert len(llama._sequences) <= 4
    cold = llama.generate(a, max_new_tokens=6, sequence="a.js")
    assert cold.prompt_tokens_computed == len(a) and cold.text == again.text
    llama.reset_cache()
    assert sorted(llama._free_slots) == [0, 1, 2, 3]


def test_a_draft_is_verified_in_one_evaluation_and_a_rejected_tail_leaves_the_kv(
    llama: LlamaEngine, evals: list[int]
) -> None:
    ids = ids_of(llama, BASE)
    plain = llama.generate(ids, max_new_tokens=16, sequence="plain")
    right = DraftingGuide(plain.token_ids)
    evals.clear()
    drafted = llama.generate(ids, max_new_tokens=16, sequence="drafted", guide=right)
    assert drafted.token_ids == plain.token_ids and drafted.drafted == drafted.draft_accepted > 0
    assert len(evals) <= 1 + 16 // 3  # the prompt, then one evaluation per token + up to 5 drafted
    assert any(n > 1 for n in evals[1:])  # drafted tokens went in together

    wrong = DraftingGuide([(t + 1) % len(llama.tokenizer) for t in plain.token_ids])
    rejected = llama.generate(ids, max_new_tokens=16, sequence="wrong", guide=wrong)
    assert rejected.text == plain.text and rejected.drafted > 0 and rejected.draft_accepted == 0
    assert kv_tokens(llama, "wrong") == len(llama._sequences["wrong"].ids)  # the rejected tokens left the KV
    longer = ids + plain.token_ids[:4]
    warm = llama.generate(longer, max_new_tokens=8, sequence="wrong")
    assert warm.prompt_tokens_computed < len(longer)
    assert warm.text == llama.generate(longer, max_new_tokens=8, sequence="cold-after-draft").text


def test_cancel_stops_within_one_token(llama: LlamaEngine, evals: list[int]) -> None:
    cancel = threading.Event()
    stop = cancelling_after(3, cancel)
    evals.clear()
    result = llama.generate(ids_of(llama, BASE), max_new_tokens=30, stop=stop, cancel=cancel, sequence="cancel")
    assert result.cancelled and result.new_tokens == 3
    assert len(evals) == 3  # nothing evaluated after the event was set
    cancel.clear()
    evals.clear()
    gone = threading.Event()
    gone.set()
    assert llama.generate(ids_of(llama, BASE), max_new_tokens=8, cancel=gone).cancelled and evals == []


def test_healing_mixing_and_drafts_give_the_torch_engines_text(
    torch_engine: TorchEngine, llama: LlamaEngine
) -> None:
    """Through the real Completer (token healing, the file's ∞-gram mixing, copy drafts)."""
    text = (
        "function add(a, b) {\n  return a + b;\n}\nfunction sub(a, b) {\n  return a - b;\n}\n"
        "const total = add(1, 2);\nconst rest = sub(3, 4);\nfunction mul(a, b) {\n  ret"
    )
    settings = Settings(model=str(torch_engine.settings.model), device="cpu", quantize="none", multiline="always")
    by_torch, by_llama = Completer(torch_engine), Completer(llama)
    cuts = [len(text), text.index("const rest") + 8, text.index("sub(3") + 2, text.index("return a - b")]
    for offset in cuts:
        expected = by_torch.complete(text, offset, settings=settings, key="mix.js")
        got = by_llama.complete(text, offset, settings=settings, key="mix.js")
        assert got.text == expected.text and got.reason == expected.reason, text[:offset][-30:]


def test_the_conversion_is_cached_by_content(f32: Settings, llama: LlamaEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    import server.engines.gguf_export as exporter

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(exporter, "export", refuse)
    again = LlamaEngine(f32)
    again.load()  # the cached file: nothing converted
    assert again.gguf == llama.gguf
    again.close()
    source = resolve_model(f32.model)
    assert content_key(source, "f32") != content_key(source, "q8_0")


def test_llama_cpps_log_goes_to_python_logging_not_to_stderr(
    f32: Settings, llama: LlamaEngine, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # llama-cpp-python prints llama.cpp's log to stderr by itself; the server's log (--log-file,
    # --log-level) must have it instead, and a load's listing is debugging detail.
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG, logger="llama.cpp"):
        again = LlamaEngine(f32)
        again.load()
        again.close()
    lines = [r for r in caplog.records if r.name == "llama.cpp"]
    assert any("n_ctx" in r.getMessage() for r in lines), [r.getMessage() for r in lines[:20]]
    assert all(r.levelno == logging.DEBUG for r in lines if "n_ctx_seq (" in r.getMessage())  # expected
    assert all("\n" not in r.getMessage() for r in lines)  # one record a line
    assert "llama_context" not in capfd.readouterr().err


def test_a_changed_model_converts_anew(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_model_dir, tmp_path / "tiny")
    first = gguf_for(resolve_model(str(copy)), "f32")
    config = json.loads((copy / "config.json").read_text())
    config["layer_norm_epsilon"] = 1e-6
    (copy / "config.json").write_text(json.dumps(config))
    second = gguf_for(resolve_model(str(copy)), "f32")
    assert first != second and first.is_file() and second.is_file()


def test_q8_0_is_made_by_llamas_quantizer_and_completes(tiny_model_dir: Path, llama: LlamaEngine) -> None:
    engine = load_engine(Settings(model=str(tiny_model_dir), device="cpu"))  # quantize auto
    assert isinstance(engine, LlamaEngine) and engine.format == "q8_0"
    assert engine.gguf is not None and llama.gguf is not None
    assert engine.gguf.stat().st_size < 0.5 * llama.gguf.stat().st_size  # 8.5 bits a weight against 32
    ids = ids_of(engine, BASE)
    result = engine.generate(ids, max_new_tokens=12)
    assert result.new_tokens == 12
    engine.close()


def test_a_gguf_file_runs_with_its_own_tokenizer(llama: LlamaEngine) -> None:
    assert llama.gguf is not None
    direct = load_engine(Settings(model=str(llama.gguf), device="cpu"))
    assert isinstance(direct, LlamaEngine) and direct.format == "as given"
    assert type(direct.tokenizer).__name__ != type(llama.tokenizer).__name__ or direct.tokenizer is not llama.tokenizer
    for text in PROMPTS:
        ids = ids_of(direct, text)
        assert ids == ids_of(llama, text)  # the vocabulary the GGUF carries is the model dir's
        assert direct.generate(ids, max_new_tokens=12).text == llama.generate(ids, max_new_tokens=12).text
    direct.close()


def test_a_lora_adapter_is_merged_before_converting(tiny_model_dir: Path, adapter_dir: Path) -> None:  # noqa: F811
    settings = Settings(model=str(tiny_model_dir), adapter=str(adapter_dir), device="cpu", quantize="none")
    torch_engine = TorchEngine(settings)
    llama = load_engine(settings)
    assert isinstance(llama, LlamaEngine)
    plain = LlamaEngine(Settings(model=str(tiny_model_dir), device="cpu", quantize="none"))
    plain.load()
    ids = ids_of(llama, BASE)
    with_adapter = llama.generate(ids, max_new_tokens=16)
    assert with_adapter.token_ids == torch_engine.generate(ids, max_new_tokens=16).token_ids
    assert with_adapter.token_ids != plain.generate(ids, max_new_tokens=16).token_ids  # the adapter counts
    llama.close()
    plain.close()


def test_a_gguf_files_tokenizer_is_read_once(llama: LlamaEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    from server.tokenizer import gguf_tokenizer

    assert llama.gguf is not None
    first = gguf_tokenizer(llama.gguf)
    calls: list[str] = []
    read = AutoTokenizer.from_pretrained

    def only_saved(name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        assert "gguf_file" not in kwargs, "the GGUF's vocabulary was converted again"
        return read(name, *args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", only_saved)
    again = gguf_tokenizer(llama.gguf)
    assert calls and again(BASE)["input_ids"] == first(BASE)["input_ids"]


def test_a_model_trained_with_bos_gets_it_before_every_prompt(llama: LlamaEngine) -> None:
    ids = ids_of(llama, BASE)
    bos = len(llama.tokenizer) - 1
    llama.bos_first = bos
    try:
        result = llama.generate(ids, max_new_tokens=4, sequence="bos")
        assert result.prompt_tokens == len(ids) + 1 and llama._sequences["bos"].ids[0] == bos
        again = llama.generate([bos, *ids], max_new_tokens=4, sequence="bos")  # never twice
        assert again.prompt_tokens == len(ids) + 1 and again.prompt_tokens_computed == 1
    finally:
        llama.bos_first = None
        llama.reset_cache("bos")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_gguf_is_a_clear_error(llama: LlamaEngine, tmp_path: Path, damage: str) -> None:
    assert llama.gguf is not None
    bad = tmp_path / "model.gguf"
    if damage == "garbage":
        bad.write_bytes(b"this is not a GGUF file\n" * 100)
    else:
        data = llama.gguf.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"llama.cpp could not load model.gguf: not a GGUF file it reads"):
        load_engine(Settings(model=str(bad), device="cpu"))
    with pytest.raises(ModelLoadError, match="GGUF file"):
        load_engine(Settings(model=str(bad), engine="torch"))


def test_an_unconvertible_architecture_falls_back_to_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "tiny-llama"
    config = LlamaConfig(
        vocab_size=len(json.loads((tiny_model_dir / "tokenizer.json").read_text())["model"]["vocab"]) + 8,
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=256,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(tiny_model_dir / name, folder / name)
    notices: list[str] = []
    auto = load_engine(Settings(model=str(folder), device="cpu"), notice=notices.append)
    assert isinstance(auto, TorchEngine) and notices == []  # auto: logged, not shown
    asked = load_engine(Settings(model=str(folder), device="cpu", engine="llama"), notice=notices.append)
    assert isinstance(asked, TorchEngine)
    assert len(notices) == 1 and "cannot convert" in notices[0] and "model_type" in notices[0]
    assert asked.generate(ids_of(asked, BASE), max_new_tokens=4).new_tokens == 4


def test_without_llama_cpp_python_torch_serves(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` raises ImportError
    notices: list[str] = []
    engine = load_engine(Settings(model=str(tiny_model_dir), device="cpu", engine="llama"), notice=notices.append)
    assert isinstance(engine, TorchEngine)
    assert len(notices) == 1 and "pip install 'codeparrot-lsp[fast]'" in notices[0]
    assert engine.generate(ids_of(engine, BASE), max_new_tokens=4).new_tokens == 4


def test_the_llama_path_completes_without_importing_torch(f32: Settings, llama: LlamaEngine) -> None:
    # Importing torch is over a second of a cold start on a laptop: the llama.cpp path, from the
    # cached conversion to healed, workspace-mixed, drafted completions, must not need it.
    script = (
        "import sys\n"
        "from server.build import build_completer\n"
        "from server.retrieval.vocab import new_index\n"
        "from server.settings import Settings\n"
        f"settings = Settings(model={f32.model!r}, device='cpu', quantize='none', engine='llama')\n"
        "completer = build_completer(settings, cache_entries=0, copy_verdicts=False)  # the engine answers\n"
        "assert completer.engine.name == 'llama', completer.engine.name\n"
        "index = new_index(completer.engine.tokenizer)\n"
        "index.build([('util.js', 'function helper(items) {\\n  return items.map(String);\\n}\\n')])\n"
        "completer.use_index(index, completer.engine.tokenizer, True)\n"
        "text = 'function helper(items) {\\n  return items.ma'\n"
        "out = completer.complete(text, len(text), settings=settings, key='main.js')\n"
        "print(repr(out.text), out.result is not None, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=server_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("True False"), done.stdout  # generated; torch never imported


def test_torch_only_when_asked(tiny_model_dir: Path) -> None:
    engine = load_engine(Settings(model=str(tiny_model_dir), device="cpu", engine="torch"))
    assert isinstance(engine, TorchEngine) and engine.describe()["name"] == "torch"


@pytest.mark.asyncio
@pytest.mark.parametrize("given", ["model dir", "gguf file"])
async def test_the_server_reports_its_engine_and_per_token_cost(given: str) -> None:
    """Over stdio with the shipped model, as its dir (converted to Q8_0) or as a GGUF file (its
    own tokenizer, for the prompt and the workspace index alike): stats name the engine and
    format, and the last completion's prefill and per-token decode times."""
    model: Path = DEFAULT_MODEL_DIR
    expected_format = "q8_0"
    if given == "gguf file":
        model, expected_format = gguf_for(resolve_model(""), "f16"), "as given"
    client = make_test_lsp_client()
    await client.start_io(*server_command(model, "--engine", "llama"), cwd=REPO, env=server_env())
    try:
        await client.initialize_session(types.InitializeParams(capabilities=client_capabilities("visual-studio-code")))
        uri = "file:///engine/loop.js"
        text = "const numbers = [4, 8, 15];\nlet total = 0;\nfor (let i = 0; i < numbers.length; i++) {\n"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=text))
        )
        items: list[Any] = []
        for _ in range(100):  # the load runs in the background: wait for a model answer
            result = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=3, character=0),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
                )
            )
            stats = await client.protocol.send_request_async("codeparrot/stats", None)
            items = list(result.items) if result else []
            if getattr(stats, "engine", None) is not None and stats.last.new_tokens > 0:
                break
            await asyncio.sleep(0.2)
        assert stats.engine.name == "llama" and stats.engine.format == expected_format
        assert items and items[0].insert_text.strip()
        assert stats.last.prefill_ms > 0 and stats.last.decode_ms_per_token > 0
    finally:
        await client.shutdown_session()
