"""The workspace for a remote engine: the most similar windows of the workspace's other files,
path-labelled, as text before its prompt (RepoCoder-style retrieval; Tabby and Continue do the
same), and whether a weaker workspace copy replaces its answer (`engine_defers`).

The in-process model gets the same windows as token ids (`Completer._snippet_block`); a remote
engine takes text, so the windows are cut to whole lines and decoded, within a budget counted in
the tokens of the tokenizer the workspace index was built with (the shipped model's): a remote
model's own tokenizer is unknown here, and BPE vocabularies of code models count JavaScript alike
within a small factor.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from server.prompt import natural_tail_ids

if TYPE_CHECKING:
    from server.backends.base import TokenLogprob
    from server.retrieval.index import WorkspaceIndex

# Alternatives asked for per generated token when a copy is weighed against the engine's answer.
ARBITER_LOGPROBS = 5
# How much more likely (natural log) the engine must have found its own token than the copy's,
# where the two part, to keep its answer (e^3 ≈ 20 times; benchmarks/README.md, "Remote engine
# with the workspace": 2 to 4 all gained on the tuning rows, 3 the most).
DEFER_MARGIN = 3.0

# Text above the cursor line that picks the windows (the in-process path's SNIPPET_QUERY_CHARS).
QUERY_CHARS = 600


def label(key: str) -> str:
    """The last two parts of a document key: enough to say where the code comes from."""
    return "/".join(key.rstrip("/").split("/")[-2:])


class RemoteSnippets:
    """The snippet text for a request, remembered while the text above the cursor line stays the
    same (typing on one line asks again at every keystroke)."""

    def __init__(self) -> None:
        self._memo: tuple[tuple[Any, ...], str] | None = None

    def text(self, index: WorkspaceIndex, tokenizer: Any, prefix: str, key: str, limit: int) -> str:
        """Up to `limit` tokens of the code most like the lines above the cursor, from other files,
        each window headed by `// <path>` and ending with a line break; "" when there is none."""
        if limit <= 0:
            return ""
        above = prefix[: prefix.rfind("\n") + 1][-QUERY_CHARS:]
        memo = (id(index), id(tokenizer), key, above, limit)
        if self._memo is not None and self._memo[0] == memo:
            return self._memo[1]
        block = ""
        query = natural_tail_ids(tokenizer, above, "", QUERY_CHARS) if above.strip() else []
        for snippet, doc in index.similar(query, key) if query else []:
            text = tokenizer.decode(doc[snippet.start : snippet.start + limit].tolist())
            first, last = text.find("\n"), text.rfind("\n")
            if 0 <= first < last:  # whole lines only
                block += f"// {label(snippet.key)}\n{text[first + 1 : last + 1]}"
        self._memo = (memo, block)
        return block


def engine_defers(tokens: list[TokenLogprob] | None, copy: str) -> bool:
    """Whether a weaker workspace `copy` replaces a remote engine's answer: where the engine, at the
    first token at which its text parts from the copy, preferred its token to the copy's by less
    than DEFER_MARGIN. A capable model is sure of what it writes and keeps it; a weak one that was
    torn defers to the code the workspace holds. The copy's log-probability there is the engine's
    own when its alternatives list it, else at most the least listed one and at most log(1 - p)
    of the chosen token. False without log-probabilities (the engine's answer, as before), and
    where the engine's text runs through the whole copy or ends inside it."""
    if not tokens:
        return False
    at = 0
    for token in tokens:
        rest = copy[at:]
        if not rest:
            return False
        if not token.text or rest.startswith(token.text):
            at += len(token.text)
            continue
        listed = [
            lp for text, lp in token.top.items() if text and text != token.text and rest.startswith(text)
        ]
        if listed:
            copied = max(listed)
        else:
            chosen = math.exp(token.logprob)
            copied = min([math.log1p(-chosen) if chosen < 1.0 else -math.inf, *token.top.values()])
        return token.logprob - copied < DEFER_MARGIN
    return False
