"""Where a model comes from: the shipped default, a local directory, a hub id, or a LoRA adapter.

`resolve_model(spec)` turns the user's `model` setting into a local directory that holds
safetensors weights, or raises a typed error whose message says what to do. It never loads
weights itself (the engine does) and it never waits on a network that is not there.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from server import hub
from server.errors import CodeparrotError, HubUnavailableError, ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR: Path = Path(__file__).parent / "default"

# What we fetch from the hub: configs, tokenizers and safetensors weights, never pickles.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a local directory ready for `from_pretrained`, plus an optional adapter."""

    path: Path
    kind: str  # "default" | "local" | "hub"
    spec: str
    adapter: Path | None = None


def resolve_model(spec: str, adapter: str = "") -> ModelSource:
    """Resolve the `model` setting (and optional `adapter` setting) to local directories.

    - "" → the shipped default in `server/models/default/`;
    - a directory with `config.json` and `*.safetensors` → that directory;
    - a LoRA adapter directory → its base model (from `adapter_config.json`) plus the adapter;
    - `org/name` → a hub snapshot, only when the hub is reachable (else `HubUnavailableError` fast).
    """
    spec = spec.strip()
    adapter_dir = resolve_adapter(adapter) if adapter.strip() else None
    if not spec:
        source = _default_source()
    else:
        path = Path(spec).expanduser()
        if path.exists():
            source = _local_source(path, spec)
        elif _looks_like_path(spec) or not _HUB_ID.match(spec):
            raise _error(
                ModelNotFoundError,
                f"Model directory {spec!r} does not exist. Pass a model directory or a hub id "
                "(org/name) with --model or the codeparrot.model setting.",
            )
        else:
            source = _local_source(_hub_snapshot(spec), spec, kind="hub")
    if adapter_dir is not None:
        if source.adapter is not None:
            raise _error(
                ModelLoadError,
                "Both the model setting and the adapter setting name a LoRA adapter; set only one of them.",
            )
        source = ModelSource(path=source.path, kind=source.kind, spec=source.spec, adapter=adapter_dir)
    return source


def resolve_adapter(spec: str) -> Path:
    """A LoRA adapter directory (peft format, safetensors weights) or a hub id for one."""
    spec = spec.strip()
    path = Path(spec).expanduser()
    if not path.exists():
        if _looks_like_path(spec) or not _HUB_ID.match(spec):
            raise _error(
                ModelNotFoundError,
                f"Adapter directory {spec!r} does not exist. Pass a peft LoRA adapter directory "
                "(adapter_config.json + adapter_model.safetensors) with --adapter or codeparrot.adapter.",
            )
        path = _hub_snapshot(spec)
    if not (path / "adapter_config.json").is_file():
        raise _error(
            ModelLoadError, f"{spec!r} is not a LoRA adapter directory: adapter_config.json is missing."
        )
    if not (path / "adapter_model.safetensors").is_file():
        _refuse_pickles(path, spec)
        raise _error(ModelLoadError, f"Adapter {spec!r} has no adapter_model.safetensors.")
    return path


def _error(cls: type[CodeparrotError], message: str) -> CodeparrotError:
    """Our messages already say what to do, so they are the user message as they stand."""
    return cls(message, user_message=message)


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def _default_source() -> ModelSource:
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        raise _error(
            ModelNotFoundError,
            "No default model is installed with this package yet. Pass a model directory "
            "with `--model PATH` (CLI) or the `codeparrot.model` setting (editor), "
            "e.g. a directory written by `python -m training.finetune`.",
        )
    _check_model_dir(DEFAULT_MODEL_DIR, "the shipped default model")
    return ModelSource(path=DEFAULT_MODEL_DIR, kind="default", spec="")


def _local_source(path: Path, spec: str, kind: str = "local") -> ModelSource:
    if not path.is_dir():
        raise _error(
            ModelNotFoundError, f"Model path {spec!r} is a file; pass the directory that holds config.json."
        )
    if is_adapter_dir(path):
        base = _adapter_base(path, spec)
        base_source = resolve_model(base)
        return ModelSource(
            path=base_source.path, kind=base_source.kind, spec=spec, adapter=resolve_adapter(str(path))
        )
    _check_model_dir(path, spec)
    return ModelSource(path=path, kind=kind, spec=spec)


def _check_model_dir(path: Path, spec: str) -> None:
    if not (path / "config.json").is_file():
        raise _error(
            ModelNotFoundError, f"{spec!r} is not a Hugging Face model directory: config.json is missing."
        )
    if not any(path.glob("*.safetensors")):
        _refuse_pickles(path, spec)
        raise _error(ModelNotFoundError, f"{spec!r} has no *.safetensors weights.")


def _refuse_pickles(path: Path, spec: str) -> None:
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise _error(
            ModelLoadError,
            f"{spec!r} only has pickled weights ({', '.join(pickles)}). Pickles can run arbitrary "
            "code, so they are never loaded. Convert once with transformers: "
            "`AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)` "
            "in a trusted environment.",
        )


def _adapter_base(path: Path, spec: str) -> str:
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _error(ModelLoadError, f"Cannot read {path / 'adapter_config.json'}: {exc}") from exc
    base = config.get("base_model_name_or_path") or ""
    if not isinstance(base, str) or not base:
        raise _error(
            ModelLoadError,
            f"Adapter {spec!r} does not name its base model; pass the base with --model and "
            "the adapter with --adapter.",
        )
    return base


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~", ".\\")) or "\\" in spec or spec.count("/") > 1


def _hub_snapshot(repo_id: str) -> Path:
    """A local snapshot of a hub repo: from the local HF cache when present, else downloaded."""
    from huggingface_hub import snapshot_download

    try:  # Already cached: works offline, no network call at all.
        cached = Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS, local_files_only=True))
        if (cached / "config.json").is_file() or (cached / "adapter_config.json").is_file():
            return cached
    except Exception:  # any miss in the cache means "not cached"
        pass
    hub.ensure_reachable(
        f"{repo_id!r} looks like a hub id and is not in the local cache: it",
        "pass a local model directory with --model / codeparrot.model.",
    )
    try:
        local = Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS, etag_timeout=5))
    except Exception as exc:  # hub errors come in many types; all mean the same here
        raise _error(HubUnavailableError, f"Could not download {repo_id!r} from the hub: {exc}") from exc
    log.info("hub model %s at %s", repo_id, local)
    return local
