"""Recent completions, and typed-ahead reuse.

Hand-written because no library we use has the typed-ahead rule: when the user types the
first characters of a completion that is on screen, the rest of it is still the answer, with
no model call. Entries are keyed by the caller's key (document + settings), the last
`PREFIX_CHARS` of the prefix and the first `SUFFIX_CHARS` of the suffix (dict hashing).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

PREFIX_CHARS = 2000  # the model sees far less than this; more only costs hashing time
SUFFIX_CHARS = 500  # same for the suffix, which gets a quarter of the prompt budget
MAX_TYPED_AHEAD = 400  # longest typed-ahead text tried: longer completions are rare

_Key = tuple[str, str, str]


class CompletionCache:
    """Thread-safe LRU of completions with typed-ahead lookup."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[_Key, str] = OrderedDict()
        self._longest = 0  # longest cached completion, bounds the typed-ahead search
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(key: str, prefix: str, suffix: str) -> _Key:
        return (key, prefix[-PREFIX_CHARS:], suffix[:SUFFIX_CHARS])

    def put(self, key: str, prefix: str, suffix: str, completion: str) -> None:
        k = self._key(key, prefix, suffix)
        with self._lock:
            self._entries[k] = completion
            self._entries.move_to_end(k)
            self._longest = max(self._longest, len(completion))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get(self, key: str, prefix: str, suffix: str) -> str | None:
        """The cached completion for exactly this place, or the untyped rest of a completion
        whose first characters the prefix now ends with; None on a miss."""
        with self._lock:
            exact = self._key(key, prefix, suffix)
            if exact in self._entries:
                self._entries.move_to_end(exact)
                return self._entries[exact]
            head = suffix[:SUFFIX_CHARS]
            for typed in range(1, min(len(prefix), self._longest - 1, MAX_TYPED_AHEAD) + 1):
                end = len(prefix) - typed
                earlier = (key, prefix[max(0, end - PREFIX_CHARS) : end], head)
                completion = self._entries.get(earlier)
                if completion is not None and len(completion) > typed and prefix.endswith(completion[:typed]):
                    self._entries.move_to_end(earlier)
                    return completion[typed:]
            return None

    def forget(self, key: str) -> None:
        """Drop the entries of one document: those whose key is `key` or starts with `key` and a
        NUL (`server.completion.cache_entry`). A closed document's completions serve no one."""
        head = key + "\x00"
        with self._lock:
            for k in [k for k in self._entries if k[0] == key or k[0].startswith(head)]:
                del self._entries[k]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._longest = 0
