"""Where a copy may land: one rule set for every source of copied text.

Copy verdicts (`copies.py`), next-line analogies (`nextline.py`), the copy answers given while the
model loads (`CopyBackend`) and the model's own completions (mixed with the workspace's ∞-gram
counts, `mixing.py`) all put text from elsewhere at the cursor. The text was right where it came
from; these rules reject what cannot be right here:

- **TypeScript into JavaScript.** `.ts/.tsx/.d.ts` files are indexed as context, but in a
  JavaScript document a continuation copied from one is dropped when it overlaps TypeScript-only
  syntax there (`export type`, `interface`, `declare`, `: Type`), decided on the TypeScript file's
  own tree (`typescript.ts_only_span`); any completion whose line reads as TypeScript is dropped
  (`typescript.ts_only_line`).
- **A definition at a call site.** After `name(` in an expression, a continuation that closes
  that parenthesis and opens a body (`cents) {`, `a, b) => {`) is the callee's definition, not a
  call: occurrences like that are dropped, so the call sites' own arguments decide.
- **A word continued from half of it.** A copy that goes on with the word before the cursor must
  have matched all of that word (and what precedes it): matching `e` of `false` says nothing about
  how `false` goes on (`falseturn a + b;`, seen while the model loaded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.retrieval.typescript import code_chars, is_typescript, ts_only_line, ts_only_span

IDENT = re.compile(r"[A-Za-z0-9_$]")
# Identifiers followed by `(` that are not calls: control flow and function heads.
NOT_CALLEES = frozenset(
    {"if", "for", "while", "switch", "catch", "function", "return", "typeof", "await", "yield", "with", "do",
     "else", "new", "void", "delete", "in", "of", "super", "import", "async", "default", "case", "throw"}  # `async (t) => {` defines
)
# What may stand before a method's name at the start of its definition line.
MEMBER_HEAD = re.compile(r"^\s*(?:(?:static|async|get|set|\*)\s*)*[#]?$")
FUNCTION_HEAD = re.compile(r"\bfunction\s*\*?\s*$")


def open_call(line: str) -> int:
    """Where the innermost parenthesis left open in `line` (the cursor line up to the cursor)
    opens, when it opens a call's arguments (`formatPrice(`, `this.cart.add(item, `); else -1.
    Not a call: `function f(`, a method's definition (`  total(` alone on its line), `if (`."""
    depth, quote = 0, ""
    for i in range(len(line) - 1, -1, -1):  # backwards: strings are skipped by their quotes
        ch = line[i]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == ")":
            depth += 1
        elif ch == "(":
            if depth:
                depth -= 1
                continue
            head = line[:i].rstrip()
            name = re.search(r"[A-Za-z_$][A-Za-z0-9_$]*$", head)
            if name is None or name.group() in NOT_CALLEES:
                return -1
            before = head[: name.start()]
            if FUNCTION_HEAD.search(before) or MEMBER_HEAD.match(before):
                return -1
            return i
    return -1


def defines(typed: str, rest: str) -> bool:
    """Whether `rest`, continuing the call whose arguments so far are `typed` (after its `(`),
    closes that parenthesis and then opens a body (`{` or `=>`): a definition's parameter list."""
    depth = sum(1 if c == "(" else -1 for c in typed if c in "()")
    for i, ch in code_chars(rest):
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                after = rest[i + 1 :].lstrip()
                return after.startswith(("{", "=>"))
            depth -= 1
    return False


def trailing_word(text: str) -> int:
    """The length of the identifier characters that end `text`."""
    n = 0
    while n < len(text) and IDENT.match(text[len(text) - 1 - n]):
        n += 1
    return n


@dataclass(frozen=True)
class CopyRules:
    """The rules for one cursor: `admits` judges a copied continuation at its source, `fits`
    any completion at the cursor."""

    line: str  # the cursor line up to the cursor
    javascript: bool  # the document is JavaScript: no TypeScript-only syntax lands in it
    call: int  # where the open call's `(` is in `line`, or -1 (not at a call site)
    word: int  # identifier characters right before the cursor
    whole: bool  # the prefix is that word alone (nothing before it to match)

    @classmethod
    def at(cls, key: str, prefix: str) -> CopyRules:
        line = prefix[prefix.rfind("\n") + 1 :]
        word = trailing_word(prefix)
        return cls(line, not is_typescript(key), open_call(line), word, word == len(prefix))

    def continues_word(self, rest: str, matched: int) -> bool:
        """Whether `rest` goes on with the word before the cursor from a match of `matched`
        characters that does not hold all of it (and the character before it)."""
        if not self.word or not rest or not IDENT.match(rest[0]):
            return False
        return matched < self.word + (0 if self.whole else 1)

    def admits(self, rest: str, matched: int, source: str = "", start: int = 0, key: str = "") -> bool:
        """Whether the occurrence of a match of `matched` characters followed by `rest` (at
        `source[start:]`, in the document `key`; source "" when unknown) may vote for copying
        `rest` here. An empty rest (the line ended there) is always a vote: for nothing. Whether a
        word is continued is judged on the verdict (`takes`): a longer match may hold all of it."""
        if not rest.strip():
            return True
        if self.call >= 0 and defines(self.line[self.call + 1 :], rest):
            return False
        if self.javascript and source and is_typescript(key):
            return not ts_only_span(source, start, start + len(rest), tsx=key.lower().endswith(".tsx"))
        return True

    def takes(self, text: str, matched: int) -> bool:
        """Whether a copy verdict (`text` after a match of `matched` characters) may be shown."""
        return bool(text) and not self.continues_word(text, matched) and self.fits(text)

    def fits(self, completion: str) -> bool:
        """Whether a completion (from any source: the model too) may be shown here."""
        lines = completion.split("\n")
        if self.call >= 0 and defines(self.line[self.call + 1 :], lines[0]):
            return False
        if not self.javascript:
            return True
        return not any(ts_only_line(self.line + lines[0] if i == 0 else line) for i, line in enumerate(lines))


# `for (let i = 0; i < 3` — the counter from 0, a numeric bound (group 2).
LOOP_HEADER = re.compile(r"\bfor\s*\(\s*(?:let|var)?\s*([A-Za-z_$][\w$]*)\s*=\s*0\s*;\s*\1\s*<\s*(\d+)(?![\w.])")
ARRAY_DECLARATION = re.compile(r"\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*\[")
SCOPE_CHARS = 4000  # text above the cursor searched for arrays (a loop is near its array)


def array_lengths(text: str) -> dict[str, int]:
    """Arrays declared with a literal in `text` (`const xs = [1, 2, 3];`): name -> element count;
    the last declaration of a name wins."""
    found: dict[str, int] = {}
    for m in ARRAY_DECLARATION.finditer(text):
        depth, count, quote, empty = 1, 0, "", True
        for i in range(m.end(), len(text)):
            ch = text[i]
            if quote:
                if ch == quote and text[i - 1] != "\\":
                    quote = ""
                continue
            if ch in "'\"`":
                quote = ch
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
                if depth == 0:
                    found[m.group(1)] = count + (0 if empty else 1)
                    break
            elif ch == "," and depth == 1:
                count += 1
            if not ch.isspace() and depth >= 1 and ch not in "]":
                empty = False
    return found


def loop_bound(prefix: str, completion: str) -> str:
    """A loop header's bound written as a number equal to the length of an array declared above
    (`const xs = [1, 2, 3];` … `for (let j = 0; j < ` → `3; j++`) is that array's `.length`: the
    model copies the literal it sees, a developer writes `xs.length`. The header may be finished
    by the completion itself (`for (let j = 0; ` → `j < 3; j++`), whose rest the editor then shows
    while the line is typed through."""
    line = prefix[prefix.rfind("\n") + 1 :]
    whole = line + completion
    for m in LOOP_HEADER.finditer(whole):
        if m.start(2) < len(line):
            continue  # the number is typed already: not ours to change
        names = [name for name, n in array_lengths(prefix[-SCOPE_CHARS:]).items() if n == int(m.group(2))]
        if names:
            at, end = m.start(2) - len(line), m.end(2) - len(line)
            return completion[:at] + names[-1] + ".length" + completion[end:]
    return completion
