"""A model dir's tokenizer on the `tokenizers` library directly, when transformers' wrapper adds
nothing but its import.

Why (DESIGN: prefer the library, say why when not): `from transformers import AutoTokenizer`
costs ~0.85 s after torch on the 2-core machines this project targets (transformers' package
init, hub and template utilities), a third of the 3 s from a cold start to the first completion;
the Rust tokenizer it wraps imports in ~10 ms. For a tokenizer saved as `tokenizer.json` by
`tokenizers`-backed classes (`TokenizersBackend`, `PreTrainedTokenizerFast`: what
`training.tokenizer` writes), the wrapper's encode and decode are the backend's own calls, so
`FastTokenizer` makes those calls itself: the handful the server uses (`__call__` with offsets,
`decode`, `batch_decode`, `get_vocab`, `len`, `eos_token_id`, `all_special_ids`,
`backend_tokenizer`). Any other tokenizer (GPT-2's own class, which rewrites its pre-tokenizer;
special tokens the file lacks; slow tokenizers) loads with `AutoTokenizer` as before
(`load_fast` returns None). `tests/server/test_fast_tokenizer.py` checks it token for token against
`AutoTokenizer`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.models import ModelSource

# "0": load with transformers' AutoTokenizer and modeling code, not `FastTokenizer` and
# `server.gpt2` (to compare; tests check the two agree).
NATIVE_ENV = "CODEPARROT_NATIVE"
# Classes whose encode/decode are exactly the backend's (no pre-tokenizer rewrite, no cleanup).
PLAIN_CLASSES = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})
NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "pad_token")
# tokenizer_config keys that change what the wrapper does; present → leave it to transformers.
WRAPPER_OPTIONS = ("add_prefix_space", "add_bos_token", "add_eos_token", "do_lower_case", "split_special_tokens")


def _content(token: Any) -> str | None:
    """A special token as tokenizer_config writes it: a string or {"content": ...}."""
    if isinstance(token, str):
        return token
    if isinstance(token, dict) and isinstance(token.get("content"), str):
        return token["content"]
    return None


class FastTokenizer:
    """The transformers tokenizer API the server uses, over a `tokenizers.Tokenizer`."""

    def __init__(self, backend: Any, special_tokens: Sequence[str], eos_token: str | None) -> None:
        self.backend_tokenizer = backend
        self._vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
        self._size = int(backend.get_vocab_size(with_added_tokens=True))
        self.all_special_tokens = list(dict.fromkeys(special_tokens))
        self.all_special_ids = [self._vocab[t] for t in self.all_special_tokens]
        self.eos_token = eos_token
        self.eos_token_id = self._vocab.get(eos_token) if eos_token is not None else None
        # split_special_tokens=True encodes "<|endoftext|>" written in a file as plain text. A
        # second backend instead of toggling the shared one: the index thread encodes meanwhile.
        self._splitting: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def _splitter(self) -> Any:
        with self._lock:
            if self._splitting is None:
                from tokenizers import Tokenizer

                self._splitting = Tokenizer.from_str(self.backend_tokenizer.to_str())
                self._splitting.encode_special_tokens = True
            return self._splitting

    def __call__(
        self,
        text: str,
        add_special_tokens: bool = True,
        split_special_tokens: bool = False,
        return_offsets_mapping: bool = False,
    ) -> dict[str, list[Any]]:
        backend = self._splitter() if split_special_tokens else self.backend_tokenizer
        encoding = backend.encode(text, add_special_tokens=add_special_tokens)
        out: dict[str, list[Any]] = {"input_ids": list(encoding.ids), "attention_mask": list(encoding.attention_mask)}
        if return_offsets_mapping:
            out["offset_mapping"] = list(encoding.offsets)
        return out

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False, **_: Any) -> str:
        return str(self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def batch_decode(self, sequences: Sequence[Sequence[int]], skip_special_tokens: bool = False, **_: Any) -> list[str]:
        return list(self.backend_tokenizer.decode_batch([list(s) for s in sequences], skip_special_tokens=skip_special_tokens))


def load_fast(directory: Path) -> FastTokenizer | None:
    """The tokenizer in `directory` as a `FastTokenizer`, or None when transformers' wrapper would
    do more than call the backend (see the module docstring): then load it with AutoTokenizer."""
    tokenizer_file, config_file = directory / "tokenizer.json", directory / "tokenizer_config.json"
    if not tokenizer_file.is_file() or not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if config.get("tokenizer_class") not in PLAIN_CLASSES or any(config.get(k) for k in WRAPPER_OPTIONS):
        return None
    if config.get("clean_up_tokenization_spaces") or (directory / "special_tokens_map.json").is_file():
        return None
    named = {key: _content(config.get(key)) for key in NAMED_SPECIALS if config.get(key) is not None}
    extra_raw = config.get("extra_special_tokens", config.get("additional_special_tokens")) or []
    if isinstance(extra_raw, dict):  # {name: token} (v5 named extras)
        extra_raw = list(extra_raw.values())
    extra = [_content(t) for t in extra_raw]
    if None in named.values() or None in extra:
        return None
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(tokenizer_file))
    added = {t.content: i for i, t in backend.get_added_tokens_decoder().items() if t.special}
    specials = [t for t in (*named.values(), *extra) if t is not None]
    if any(t not in added for t in specials):
        return None  # the wrapper would add it to the vocabulary: let it
    for token_id, token in (config.get("added_tokens_decoder") or {}).items():
        if added.get(_content(token) or "") != int(token_id):
            return None
    # The wrapper's special tokens are the named ones, then the extras, then other special added tokens.
    ordered = [*specials, *sorted((t for t in added if t not in specials), key=added.__getitem__)]
    return FastTokenizer(backend, ordered, named.get("eos_token"))


_TEXTS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def token_texts(tokenizer: Any) -> list[str]:
    """The text of every token id, decoded alone (a partial UTF-8 sequence decodes to U+FFFD).
    Decoding a whole vocabulary takes a noticeable fraction of a second: once per tokenizer."""
    cached = _TEXTS.get(tokenizer)
    if cached is None or len(cached) != len(tokenizer):
        cached = list(tokenizer.batch_decode([[i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False))
        with contextlib.suppress(TypeError):  # not weak-referenceable: just don't cache
            _TEXTS[tokenizer] = cached
    return cached


def native_allowed() -> bool:
    return os.environ.get(NATIVE_ENV, "").strip() != "0"


def tokenizer_dir(source: ModelSource) -> Path:
    """Where a model's tokenizer lives: the adapter's own, when it brings one."""
    if source.adapter and (source.adapter / "tokenizer.json").is_file():
        return source.adapter
    return source.path


def load_model_tokenizer(source: ModelSource) -> Any:
    """The tokenizer of a resolved model (both engines use it, and the workspace index before
    the weights load): a `FastTokenizer` when transformers' wrapper would only call the Rust
    tokenizer (its import is ~0.85 s of a cold start), else transformers' AutoTokenizer."""
    directory = tokenizer_dir(source)
    if native_allowed():
        fast = load_fast(directory)
        if fast is not None:
            return fast
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)


def is_gguf_path(spec: str) -> bool:
    """Whether the `model` setting names a GGUF file (run by the llama.cpp engine)."""
    return spec.strip().lower().endswith(".gguf")


def gguf_tokenizer(path: Path) -> Any:
    """The tokenizer a GGUF file carries, as a transformers fast tokenizer (offsets included: the
    prompt builder and the workspace index need them). Reading it converts the file's vocabulary
    (~30 s for a 262k-token one), so the result is saved beside the GGUF cache, keyed by the
    file's path, size and modification time, and loaded from there next time. Raises `ModelLoadError`."""
    from server.errors import ModelLoadError
    from server.settings import cache_dir

    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    saved = cache_dir() / "tokenizers" / f"{path.stem}-{key}"
    try:
        from transformers import AutoTokenizer

        if (saved / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(str(saved), trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, trust_remote_code=False)
    except Exception as exc:  # transformers raises many types for a file it cannot read
        raise ModelLoadError(f"Could not read the tokenizer in {path.name}: {exc}") from exc
    with contextlib.suppress(OSError):  # an unwritable cache only costs the next start the conversion
        scratch = saved.with_name(saved.name + ".tmp")
        tokenizer.save_pretrained(str(scratch))
        os.replace(scratch, saved)
    return tokenizer
