"""Run configuration: one dataclass per concern, loaded from a recipe TOML and `--set` overrides.

A recipe is a TOML file with the sections `[model]`, `[tokenizer]`, `[data]`, `[train]`, `[lora]`.
`DataConfig` and `TokenizerConfig` are owned by `training.data.config`; this module embeds them.
Every key is checked against the dataclass field it names, and every value is coerced to that
field's type, so a typo or a bad value raises `ConfigError` naming the key before any work starts.
`[model]` is the exception by design: besides the fields of `ModelConfig`, any key is passed through
to the transformers config class (`n_layer`, `n_embd`, ...) and checked against it.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data.config import DataConfig, TokenizerConfig
from training.data.tokenfile import paths

RECIPES_DIR = Path(__file__).parent / "recipes"

__all__ = [
    "RECIPES_DIR",
    "ConfigError",
    "DataConfig",
    "LoraConfig",
    "ModelConfig",
    "RunConfig",
    "TokenizerConfig",
    "TrainConfig",
    "apply_overrides",
    "from_dict",
    "list_recipes",
    "load_recipe",
    "to_dict",
    "validate",
]


class ConfigError(ValueError):
    """A recipe or override names an unknown key or carries a bad value."""


@dataclass
class ModelConfig:
    name_or_path: str = ""  # hub id or local dir of a pretrained model; unused when from_scratch
    from_scratch: bool = False  # random init from `arch` + the extra config fields (scratch recipes)
    arch: str = "gpt2"  # transformers model_type used for from-scratch configs (AutoConfig.for_model)
    # Free transformers config fields (n_layer, n_embd, ...): `model.X` keys that are not fields above.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    output_dir: str = "out"  # model dir written at the end; checkpoints go to OUT/checkpoints/
    objective: str = "clm"  # "clm" (causal LM) or "mlm" (masked LM, RoBERTa-style)
    max_steps: int = -1  # > 0 overrides num_train_epochs; tests and quick runs set a few steps
    num_train_epochs: float = 1.0  # one pass is the HF guides' default for fine-tuning
    per_device_train_batch_size: int = 8  # packed blocks are dense, 8 fits a laptop for small models
    per_device_eval_batch_size: int = 8  # eval has no grads, same size is safe
    gradient_accumulation_steps: int = 1  # raise to reach a larger effective batch on small memory
    learning_rate: float = 5e-4  # codeparrot-small's pretraining peak LR; recipes lower it for fine-tuning
    weight_decay: float = 0.1  # GPT-2/codeparrot AdamW setting
    warmup_steps: int = 0  # absolute warmup; wins over warmup_ratio when > 0
    warmup_ratio: float = 0.05  # short linear warmup keeps early Adam steps from blowing up
    lr_scheduler: str = "cosine"  # cosine decay after warmup, as codeparrot and nanoGPT
    max_grad_norm: float = 1.0  # clip exploding gradients (Trainer default)
    bf16: str = "auto"  # "auto": bf16 mixed precision on a GPU that supports it, fp32 on CPU
    gradient_checkpointing: bool = False  # trade ~30% compute for activation memory on big models
    eval_steps: int = 0  # 0: evaluate once at the end only; > 0: also every N steps
    save_steps: int = 500  # checkpoint cadence for --resume
    save_total_limit: int = 2  # keep disk bounded; the last checkpoint is enough to resume
    logging_steps: int = 10  # loss-curve resolution
    seed: int = 42  # model init, data order, dropout
    # "shuffle": the Trainer's seeded random order each epoch. "walk": one seeded permutation of the
    # training blocks read in order from `data_offset` (wrapping around), so runs that continue one
    # another see new blocks; metrics.json records the next run's `data_next_offset`.
    data_order: str = "shuffle"
    data_offset: int = 0  # walk: blocks of the permutation the starting model already trained on
    mlm_probability: float = 0.15  # BERT/RoBERTa masking rate (MLM only)
    dataloader_num_workers: int = 0  # blocks are in memory already; workers only add start-up time
    max_shard_size: str = ""  # e.g. "16MB" to shard the saved weights; "" = one file
    progress_bar: bool = True  # tqdm bars on stderr


@dataclass
class LoraConfig:
    enabled: bool = False  # train a peft LoRA adapter instead of all weights
    r: int = 16  # adapter rank: enough for domain adaptation of a 100M model
    alpha: int = 32  # scaling alpha/r = 2, the common LoRA default ratio
    dropout: float = 0.05  # light regularisation on small fine-tuning sets
    target_modules: list[str] = field(default_factory=lambda: ["c_attn", "c_proj", "c_fc"])  # GPT-2 attn+MLP
    fan_in_fan_out: bool = True  # GPT-2 uses Conv1D (weights stored transposed)
    merge: bool = False  # also write merged full weights to OUT/merged/ (same as --merge)


@dataclass
class RunConfig:
    name: str = "custom"  # recipe name, recorded in training_config.json
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    recipe_path: str = ""  # the TOML this config came from (copied into the output dir)


SECTIONS = ("model", "tokenizer", "data", "train", "lora")
CHOICES: dict[str, tuple[str, ...]] = {
    "train.objective": ("clm", "mlm"),
    "train.bf16": ("auto", "true", "false"),
    "train.data_order": ("shuffle", "walk"),
    "train.lr_scheduler": ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts"),
}


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def _recipe_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"recipe file not found: {path}")
        return path
    candidate = RECIPES_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        raise ConfigError(f"unknown recipe {name_or_path!r}; known recipes: {', '.join(list_recipes())}")
    return candidate


def load_recipe(name_or_path: str) -> RunConfig:
    """Load a recipe by name (training/recipes/NAME.toml) or by path to a .toml file."""
    path = _recipe_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path}: invalid TOML: {exc}") from exc
    cfg = RunConfig(name=str(raw.pop("name", path.stem)), recipe_path=str(path.resolve()))
    raw.pop("description", None)
    for section, values in raw.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise ConfigError(f"recipe {path}: unknown section {section!r} (expected {', '.join(SECTIONS)})")
        for key, value in values.items():
            _set(cfg, f"{section}.{key}", value)
    return cfg


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from `to_dict` output (e.g. a model dir's training_config.json)."""
    cfg = RunConfig(name=str(raw.get("name", "custom")), recipe_path=str(raw.get("recipe_path", "")))
    for section in SECTIONS:
        values = dict(raw.get(section) or {})
        if section == "model":
            values.update(values.pop("extra", None) or {})
        for key, value in values.items():
            _set(cfg, f"{section}.{key}", value)
    return cfg


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `section.key=value` strings in order; values are coerced to the field's type."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r}: expected section.key=value (e.g. train.max_steps=10)")
        _set(cfg, key.strip(), value.strip())
    return cfg


def _set(cfg: RunConfig, key: str, value: Any) -> None:
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"unknown config key {key!r}: section must be one of {', '.join(SECTIONS)}")
    target = getattr(cfg, section)
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    if section == "model" and (name not in names or name == "extra"):
        target.extra[name] = _parse_free(value)  # checked against the transformers config in validate()
        return
    if name not in names:
        raise ConfigError(f"unknown config key {key!r}; known keys in [{section}]: {', '.join(sorted(names))}")
    try:
        setattr(target, name, _coerce(value, hints[name]))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {key!r}: {value!r} ({exc})") from exc


def _parse_free(value: Any) -> Any:
    """Untyped `model.X` values: TOML literal syntax when it parses (10, 0.1, true, [..]), else a string."""
    if not isinstance(value, str):
        return value
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _coerce(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"expected one of {', '.join(map(str, args))}")
        return value
    if origin in (list, tuple):
        items = _as_list(value)
        inner = args[0] if args else str
        coerced = [_coerce(v, inner) for v in items]
        return coerced if origin is list else tuple(coerced)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ValueError("expected a table")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("expected an integer")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ValueError("expected a string")
        return str(value).lower() if isinstance(value, bool) else str(value)
    if tp is Any:
        return _parse_free(value)
    raise TypeError(f"unsupported field type {tp!r}")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        raise ValueError("expected a list")
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"invalid list syntax: {exc}") from exc
        return list(parsed)
    return [part.strip() for part in text.split(",") if part.strip()]


def validate(cfg: RunConfig) -> RunConfig:
    """Cross-field checks that need no model or data; raises ConfigError naming the key."""
    for key, allowed in CHOICES.items():
        section, _, name = key.partition(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"bad value for {key!r}: {value!r} (expected one of {', '.join(allowed)})")
    positive = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
    for name in positive:
        if getattr(cfg.train, name) < 1:
            raise ConfigError(f"bad value for 'train.{name}': must be >= 1")
    if cfg.train.learning_rate <= 0:
        raise ConfigError("bad value for 'train.learning_rate': must be > 0")
    if not 0 <= cfg.train.warmup_ratio < 1:
        raise ConfigError("bad value for 'train.warmup_ratio': must be in [0, 1)")
    if not 0 < cfg.train.mlm_probability < 1:
        raise ConfigError("bad value for 'train.mlm_probability': must be in (0, 1)")
    if cfg.train.max_steps == 0 or (cfg.train.max_steps < 0 and cfg.train.num_train_epochs <= 0):
        raise ConfigError("bad value for 'train.max_steps': set max_steps > 0 or num_train_epochs > 0")
    if cfg.train.save_steps < 1 or cfg.train.logging_steps < 1:
        raise ConfigError("bad value for 'train.save_steps'/'train.logging_steps': must be >= 1")
    if not cfg.model.from_scratch and not cfg.model.name_or_path:
        raise ConfigError("missing 'model.name_or_path' (or set model.from_scratch=true)")
    if cfg.lora.enabled and cfg.model.from_scratch:
        raise ConfigError("bad value for 'lora.enabled': LoRA needs a pretrained model, not model.from_scratch")
    if cfg.lora.enabled and cfg.train.objective != "clm":
        raise ConfigError("bad value for 'lora.enabled': LoRA recipes are causal LM only (train.objective=clm)")
    if cfg.lora.enabled and not cfg.lora.target_modules:
        raise ConfigError("bad value for 'lora.target_modules': empty")
    if cfg.lora.r < 1:
        raise ConfigError("bad value for 'lora.r': must be >= 1")
    if cfg.train.data_offset < 0:
        raise ConfigError("bad value for 'train.data_offset': must be >= 0")
    if cfg.train.data_offset and cfg.train.data_order != "walk":
        raise ConfigError("'train.data_offset' needs train.data_order=walk")
    if cfg.data.tokens:
        if not paths(Path(cfg.data.tokens))[1].is_file():
            raise ConfigError(
                f"bad value for 'data.tokens': {cfg.data.tokens!r} is not a finished token file "
                "(make one with `python -m training.data.tokens pack`)"
            )
        if cfg.train.objective != "clm":
            raise ConfigError("bad value for 'data.tokens': a packed token file is for causal LM training only")
    _validate_model_extra(cfg.model)
    return cfg


def _validate_model_extra(model: ModelConfig) -> None:
    """Free `model.X` keys must be attributes of the transformers config class for `model.arch`."""
    from transformers import AutoConfig

    try:
        defaults = AutoConfig.for_model(model.arch)
    except ValueError as exc:
        raise ConfigError(f"bad value for 'model.arch': {model.arch!r} is not a transformers model type") from exc
    for key, value in model.extra.items():
        if not hasattr(defaults, key):
            raise ConfigError(
                f"unknown config key 'model.{key}': not a field of ModelConfig nor of {type(defaults).__name__}"
            )
        default = getattr(defaults, key)
        if isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, int):
            raise ConfigError(f"bad value for 'model.{key}': {value!r} (expected an integer)")
        if isinstance(default, float) and not isinstance(value, (int, float)):
            raise ConfigError(f"bad value for 'model.{key}': {value!r} (expected a number)")


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (for training_config.json)."""
    return dataclasses.asdict(cfg)
