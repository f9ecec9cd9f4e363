"""Training-data fixtures: real npm package dirs, github-code parquet shards and eli5 json files.

Shared by the data/tokenizer tests and the finetune tests. JavaScript bodies are generated
from a seeded RNG with a large identifier space, so distinct files are *not* near duplicates
(their identifier sets barely overlap) while deliberate copies are.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

# Words the fixture tokenizer (tests/tiny_model.py) knows, so fixture code compresses like real
# code (chars-per-token filter) while random combinations keep files distinct.
_WORDS = ["items", "value", "node", "item", "push", "read", "path", "fetch", "res", "acc", "sum", "add", "length",
          "json", "status", "next", "console", "log", "error", "url", "xs", "fs", "app", "queue", "data", "result"]
_TEMPLATES = [
    "function {f}({a}, {b}) {{\n  const {c} = {a} + {b} * {n};\n  if ({c} > {m}) {{\n    return {c} - {a};\n  }}\n"
    "  return [{a}, {b}, {c}].map(({d}) => {d} * 2);\n}}\n",
    "const {f} = async ({a}) => {{\n  const {b} = await {c}.{d}({a});\n  if (!{b}) {{\n"
    "    throw new Error('{f}: missing {a}');\n  }}\n  return {b}.{e};\n}};\n",
    "class {F} {{\n  constructor({a}) {{\n    this.{a} = {a};\n    this.{b} = [];\n  }}\n\n  {c}({d}) {{\n"
    "    this.{b}.push({d});\n    return this.{b}.length > {n};\n  }}\n}}\n",
    "for (let {a} = 0; {a} < {b}.length; {a}++) {{\n  const {c} = {b}[{a}];\n  if ({c}.{d} === '{e}') {{\n"
    "    {f}.set({c}.{e}, {a});\n  }}\n}}\n",
    "// {f}: combine {a} and {b}\nexport function {f}({a} = {{}}, {b} = {n}) {{\n  return Object.keys({a})\n"
    "    .filter(({c}) => {c} !== '{d}')\n    .reduce(({e}, {c}) => {e} + {b}, 0);\n}}\n",
]


def _ident(rng: random.Random) -> str:
    return "_".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 3)))


def js_source(seed: int, n_blocks: int = 6) -> str:
    """A realistic-looking, unique JavaScript file (deterministic per seed)."""
    rng = random.Random(seed)
    out = [f"'use strict';\n// module {_ident(rng)}\n"]
    for _ in range(n_blocks):
        names = {k: _ident(rng) for k in "abcdef"}
        out.append(rng.choice(_TEMPLATES).format(F=_ident(rng).capitalize(), n=rng.randint(2, 99),
                                                 m=rng.randint(100, 999), **names))
    return "\n".join(out)


MINIFIED = "var a=function(){return 1};" * 60  # one 1,560-char line
GENERATED = "// This file is auto-generated. Do not edit.\n" + js_source(999)
COMPILED = '"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\n' + js_source(998)


def write_package(root: Path, folder: str, meta: dict[str, Any], files: dict[str, str]) -> Path:
    pkg = root / folder
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "package.json").write_text(json.dumps(meta), encoding="utf-8")
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text, encoding="utf-8")
    return pkg


# name -> (package.json license fields, accepted?)
LICENSE_CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "alpha-mit": ({"license": "MIT"}, True),
    "beta-isc-lower": ({"license": "isc"}, True),
    "gamma-or": ({"license": "(MIT OR Apache-2.0)"}, True),
    "delta-legacy-array": ({"licenses": [{"type": "ISC", "url": "x"}]}, True),
    "epsilon-object": ({"license": {"type": "MIT", "url": "x"}}, True),
    "zeta-gpl": ({"license": "GPL-3.0"}, False),
    "eta-or-gpl": ({"license": "MIT OR GPL-3.0"}, False),
    "theta-see": ({"license": "SEE LICENSE IN LICENSE.md"}, False),
    "iota-missing": ({}, False),
    "kappa-and-gpl": ({"license": "(MIT AND GPL-2.0)"}, False),
}


@pytest.fixture(scope="session")
def npm_packages_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unpacked npm packages: assorted licenses, build/vendored/minified files, a reserved package,
    an exact duplicate and a near duplicate."""
    root = tmp_path_factory.mktemp("npm-pkgs")
    for i, (name, (lic, _ok)) in enumerate(LICENSE_CASES.items()):
        files = {f"lib/file{j}.js": js_source(100 * i + j) for j in range(4)}
        files["index.js"] = js_source(100 * i + 50)
        write_package(root, name, {"name": name, "version": f"1.{i}.0", **lic}, files)
    # scoped package in an @scope folder
    write_package(root / "@acme", "util", {"name": "@acme/util", "version": "2.0.0", "license": "Apache-2.0"},
                  {"src/a.js": js_source(7001), "src/b.mjs": js_source(7002), "src/view.jsx": js_source(7003)})
    # junk inside an accepted package: every one of these must be skipped
    write_package(root, "junk-mit", {"name": "junk-mit", "version": "0.1.0", "license": "MIT"}, {
        "src/main.js": js_source(8001),
        "dist/main.js": js_source(8002),
        "build/out.js": js_source(8003),
        "node_modules/dep/index.js": js_source(8004),
        "vendor/jquery.js": js_source(8005),
        "src/app.min.js": js_source(8006),
        "src/app.bundle.js": js_source(8007),
        "src/app.js.map": "{}",
        "src/minified.js": MINIFIED,
        "src/generated.js": GENERATED,
        "src/compiled.js": COMPILED,
        "src/types.ts": js_source(8008),
        "README.md": "# junk\n",
        "src/copy.js": js_source(100 * 0 + 1),  # exact copy of alpha-mit/lib/file1.js
        "src/near.js": js_source(100 * 0 + 2).replace("'use strict';", "'use strict'; // tweaked"),
    })
    # reserved for evaluation (MIT, clean code, but must never be used)
    write_package(root, "lodash", {"name": "lodash", "version": "4.17.21", "license": "MIT"},
                  {"lodash.js": js_source(9001)})
    write_package(root / "@node-red", "runtime",
                  {"name": "@node-red/runtime", "version": "3.0.0", "license": "Apache-2.0"},
                  {"lib/index.js": js_source(9002)})
    return root


GITHUB_ROWS: list[dict[str, Any]] = [
    *({"repo_name": f"user{i}/proj{i}", "path": f"src/mod{i}.js", "license": lic, "content": js_source(500 + i)}
      for i, lic in enumerate(["mit", "apache-2.0", "isc", "MIT", "mit", "isc"])),
    {"repo_name": "user9/lib", "path": "lib/x.mjs", "license": "mit", "content": js_source(520)},
    {"repo_name": "py/proj", "path": "main.py", "license": "mit", "content": "def f():\n    return 1\n" * 20},
    {"repo_name": "gpl/proj", "path": "src/gpl.js", "license": "gpl-3.0", "content": js_source(530)},
    {"repo_name": "bsd/proj", "path": "src/bsd.js", "license": "bsd-3-clause", "content": js_source(531)},
    {"repo_name": "min/proj", "path": "src/app.js", "license": "mit", "content": MINIFIED},
    {"repo_name": "min/proj", "path": "dist/app.min.js", "license": "mit", "content": js_source(532)},
    {"repo_name": "nm/proj", "path": "node_modules/x/index.js", "license": "mit", "content": js_source(533)},
    {"repo_name": "dup/proj", "path": "src/copy.js", "license": "mit", "content": js_source(500) + "\n\n  "},
    {"repo_name": "near/proj", "path": "src/near.js", "license": "mit",
     "content": js_source(501).replace("'use strict';", "'use strict'; // near")},
    {"repo_name": "someone/express", "path": "lib/router.js", "license": "mit", "content": js_source(534)},
]


@pytest.fixture(scope="session")
def github_code_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two parquet shards with the raw github-code schema; returns the dir (glob `*.parquet`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("github-code")
    rows = [{**r, "copies": "1", "size": len(r["content"])} for r in GITHUB_ROWS]
    half = len(rows) // 2
    for k, chunk in enumerate((rows[:half], rows[half:])):
        table = pa.table({col: [r[col] for r in chunk] for col in
                          ("content", "repo_name", "path", "copies", "size", "license")})
        pq.write_table(table, root / f"train-{k:05d}-of-00002.parquet")
    return root


def eli5_rows(n: int = 40) -> list[dict[str, Any]]:
    rng = random.Random(5)
    words = [_ident(rng) for _ in range(300)]
    rows = []
    for i in range(n):
        answers = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))) + "." for _ in range(3)]
        rows.append({
            "q_id": f"q{i}", "title": f"Why does {words[i]} happen?", "selftext": "", "category": "Physics",
            "subreddit": "explainlikeimfive",
            "answers": {"a_id": [f"a{i}{k}" for k in range(3)], "text": answers, "score": [3, 2, 1],
                        "text_urls": [[], [], []]},
            "title_urls": {"url": []}, "selftext_urls": {"url": []},
        })
    rows.append({**rows[0], "q_id": "empty", "answers": {"a_id": [], "text": [], "score": [], "text_urls": []}})
    return rows


@pytest.fixture(scope="session")
def eli5_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An eli5_category-shaped json-lines file."""
    path = tmp_path_factory.mktemp("eli5") / "train.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in eli5_rows()), encoding="utf-8")
    return path
