"""Names from the workspace: a half-typed identifier is finished with a name the project has.

A developer typing `import { format` in cart.js, with `formatPrice` defined in utils.js, expects
`formatPrice`: the small model, which has never seen the name, writes one of its own (`format }
from 'cjs-format'`), and the copy verdict needs 8 matching characters where `format` has 6. So
when the model's word (the typed part and what the completion adds to it) is a name found nowhere
in the document or the workspace, while names there do start with the typed part, the most
common of them is offered instead (the `Completer` then completes the line after it).

Not for a name being declared (`const totalPr`: a new name is the point), a member after `.` (the
object's members are not known here: `JSON.stri` must stay `stringify`), or a word the language
or its runtime defines (`parseInt` while the project has `parseArgs`).
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MIN_TYPED = 3  # characters of the word typed before names are offered: fewer match too much
MAX_TEXTS_CHARS = 8_000_000  # text scanned for names, the document first: ~5 ms where none matches
MAX_NAMES = 5_000  # names read (a common prefix such as `get` has thousands)
IDENT_TAIL = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")  # \Z: `$` also matches before a final line break
IDENT_HEAD = re.compile(r"^[A-Za-z0-9_$]*")
DECLARING = re.compile(r"(?:\b(?:const|let|var|function\*?|class)\s+|\bfunction\s*\*\s*)\Z")
# JavaScript's keywords and the globals its runtimes define: known without the workspace.
BUILTINS = frozenset(
    [
        "await", "break", "case", "catch", "class", "const", "continue", "debugger", "default",
        "delete", "do", "else", "export", "extends", "false", "finally", "for", "function", "if",
        "import", "in", "instanceof", "let", "new", "null", "of", "return", "static", "super",
        "switch", "this", "throw", "true", "try", "typeof", "undefined", "var", "void", "while",
        "with", "yield", "async", "Array", "ArrayBuffer", "BigInt", "Boolean", "Buffer", "DataView",
        "Date", "Error", "EvalError", "Float32Array", "Float64Array", "Function", "Infinity",
        "Int8Array", "Int16Array", "Int32Array", "Intl", "JSON", "Map", "Math", "NaN", "Number",
        "Object", "Promise", "Proxy", "RangeError", "ReferenceError", "Reflect", "RegExp", "Set",
        "String", "Symbol", "SyntaxError", "TypeError", "URIError", "URL", "URLSearchParams",
        "Uint8Array", "Uint16Array", "Uint32Array", "WeakMap", "WeakSet", "AbortController",
        "TextDecoder", "TextEncoder", "arguments", "clearInterval", "clearTimeout", "console",
        "decodeURIComponent", "document", "encodeURIComponent", "exports", "fetch", "globalThis",
        "isFinite", "isNaN", "localStorage", "module", "parseFloat", "parseInt", "process",
        "queueMicrotask", "require", "setImmediate", "setInterval", "setTimeout", "structuredClone",
        "window", "__dirname", "__filename"
    ]
)


def _names(typed: str, texts: Iterable[str]) -> Iterable[tuple[str, bool]]:
    """The whole names starting with `typed` in `texts`, each with whether it is a member (after
    `.`), up to MAX_NAMES of them in the first MAX_TEXTS_CHARS characters. The pattern starts with the
    literal, which `re` finds at memchr speed (a lookbehind first would try every position:
    ~1.4 s for 26 MB where this takes ~13 ms); the character before is checked by hand."""
    pattern = re.compile(re.escape(typed) + r"[A-Za-z0-9_$]*")
    budget, found = MAX_TEXTS_CHARS, 0
    for text in texts:
        if typed in text:
            for m in pattern.finditer(text):
                at = m.start()
                if at and (text[at - 1].isalnum() or text[at - 1] in "_$"):
                    continue
                yield m.group(), at > 0 and text[at - 1] == "."
                found += 1
                if found >= MAX_NAMES:
                    return
        budget -= len(text)
        if budget <= 0:
            return


def name_to_offer(prefix: str, completion: str, texts: Callable[[], list[str]]) -> str:
    """The rest of a name found in `texts` that the word before the cursor should become instead
    of what `completion` makes of it, or "" (the completion's word is known, or no name fits).
    `texts()`: the document without the cursor's word, then the workspace's files (asked for only
    where a name may be offered)."""
    word = IDENT_TAIL.search(prefix)
    if word is None or len(word.group()) < MIN_TYPED or word.group()[0].isdigit():
        return ""
    before = prefix[: word.start()]
    if before.rstrip().endswith((".", "?.")) or DECLARING.search(before):
        return ""
    typed = word.group()
    written = typed + IDENT_HEAD.match(completion).group()  # type: ignore[union-attr]
    if written in BUILTINS:
        return ""
    sources = texts()
    if any(name == written for name, _ in _names(written, sources)):
        return ""  # the completion's word is one the project uses (most often found in the file itself)
    counts = Counter(name for name, member in _names(typed, sources) if not member and name != typed)
    if not counts:
        return ""
    (best, n), *rest = counts.most_common(2)
    if rest and rest[0][1] == n:
        return ""  # two names as common: no reason to pick one
    return best[len(typed) :]


# The cursor inside a relative module specifier: `require('./`, `from '../li`, `import('./`.
SPECIFIER = re.compile(r"""(?:\brequire\s*\(\s*|\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)(['"])(\.{1,2}/[^'"]*)\Z""")
MODULE_SUFFIXES = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx")
BINDINGS = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


CLOSERS_ONLY = re.compile(r"""\s*['"`]?\)?;?\s*""")  # what may follow a specifier on its line


def specifier_quote(prefix: str) -> str:
    """The quote of the relative module specifier that the cursor is in (`require('./`), or ""."""
    m = SPECIFIER.search(prefix[prefix.rfind("\n") + 1 :])
    return m.group(1) if m is not None else ""


def path_to_offer(prefix: str, completion: str, document: str, workspace: Callable[[], dict[str, str]]) -> str:
    """In a relative module specifier (`require('./`), the rest of the path of the workspace file
    that the line imports, where `completion` names no file there; or "".

    `document` is the path of the file being edited, `workspace()` the workspace's files (path ->
    text; asked for only in a specifier).
    The file is the one that holds the most of the names the line binds (`{ add, subtract }`,
    `const User =`); the path is written as the project writes its imports (with the extension
    after `from`, without it in `require`, unless the file itself says otherwise)."""
    line = prefix[prefix.rfind("\n") + 1 :]
    m = SPECIFIER.search(line)
    if m is None:
        return ""
    files = workspace()
    quote, typed = m.group(1), m.group(2)
    here = posixpath.dirname(document)
    specs: dict[str, str] = {}  # specifier -> path, both with and without the extension
    for path in files:
        if path == document or not path.endswith(MODULE_SUFFIXES) or path.endswith(".d.ts"):
            continue
        rel = posixpath.relpath(path, here)
        rel = rel if rel.startswith("../") else "./" + rel
        specs[rel] = path
        specs[posixpath.splitext(rel)[0]] = path
    names = set(BINDINGS.findall(line[: m.start()])) - BUILTINS
    lowered = {n.lower() for n in names}

    def score(path: str) -> int:
        """How many of the line's names the file holds (its own name counts as one)."""
        found = sum(1 for n in names if re.search(rf"(?<![A-Za-z0-9_$.]){re.escape(n)}(?![A-Za-z0-9_$])", files[path]))
        return found + (posixpath.splitext(posixpath.basename(path))[0].lower() in lowered)

    written = typed + completion.split(quote, 1)[0] if quote in completion else None
    extension = "require" not in m.group(0) or re.search(r"require\(\s*['\"]\.{1,2}/[^'\"]+\.js['\"]", prefix)
    best: tuple[int, int, str] | None = None
    for spec, path in specs.items():
        if spec.startswith(typed) and (posixpath.splitext(spec)[1] != "") == bool(extension):
            key = (score(path), -len(spec), spec)
            best = key if best is None or key > best else best
    if best is None or (best[0] == 0 and len(specs) > 2):
        return ""  # no file is the one this line means
    if written is not None and written in specs and score(specs[written]) >= best[0]:
        return ""  # the completion names a file of the workspace, as good as any
    after = completion.split(quote, 1)[1] if quote in completion else ""
    return best[2][len(typed) :] + quote + after


@dataclass(frozen=True)
class Offer:
    text: str  # what to show instead of the completion
    quote: str  # in a module specifier: its quote (the text ends the line; filters cut at the quote)
    name: bool  # a name: the line is to be completed after it


def fs_path(key: str) -> str:
    """A document key's file path (a `file:` URI's path; any other key as it is)."""
    parsed = urllib.parse.urlparse(key)
    return urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else key


def workspace_offer(
    prefix: str, suffix: str, key: str, completion: str, from_model: bool, files: Callable[[], dict[str, str]]
) -> Offer | None:
    """What the workspace's names offer instead of `completion` at the end of `prefix` in the
    document `key` (`files()`: the workspace's texts by key, read only where a rule applies):
    in a relative module specifier, a file's path (`path_to_offer`); for a word the model made
    up (`from_model`), a name of the project (`name_to_offer`). None: keep the completion."""
    quote = specifier_quote(prefix)
    if quote:
        if not CLOSERS_ONLY.fullmatch(suffix.split("\n", 1)[0]):
            return None  # the specifier goes on right of the cursor
        path = path_to_offer(prefix, completion, fs_path(key), lambda: {fs_path(k): t for k, t in files().items()})
        return Offer(path, quote, False) if path else None
    if not from_model or not completion:
        return None  # a copy's word matched 8 characters or more: the project has it
    typed = IDENT_TAIL.search(prefix)
    own = [prefix[: typed.start()] if typed is not None else prefix, suffix]  # without the word itself
    rest = name_to_offer(prefix, completion, lambda: own + [t for k, t in files().items() if k != key])
    return Offer(rest, "", True) if rest else None
