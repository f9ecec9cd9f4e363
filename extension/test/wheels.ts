// Tiny real wheels for the setup tests, written by Python's zipfile: a `torch` 2.13.0 that is
// a few bytes, and a `codeparrot-lsp` whose `server.__main__` exists (what the extension's
// import check asks for), requiring that torch. pip installs them offline from a folder.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";

import type { Bundle, BundleManifest } from "../src/bundle";

export const PYTHON = process.env.CODEPARROT_PYTHON ?? "python3";

const WHEEL_SCRIPT = `
import base64, hashlib, sys, zipfile
out, name, version, requires = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
dist = name.replace("-", "_")
files = {}
if name == "torch":
    files["torch/__init__.py"] = f"__version__ = '{version}'\\n"
else:
    files["server/__init__.py"] = ""
    files["server/__main__.py"] = "import sys\\nsys.exit('tiny test server')\\n"
meta = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Requires-Python: >=3.11"]
meta += [f"Requires-Dist: {r}" for r in requires]
if name != "torch":
    meta += ["Provides-Extra: fast"]
files[f"{dist}-{version}.dist-info/METADATA"] = "\\n".join(meta) + "\\n"
files[f"{dist}-{version}.dist-info/WHEEL"] = "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
record = f"{dist}-{version}.dist-info/RECORD"
lines = []
for path, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    lines.append(f"{path},sha256={digest},{len(text.encode())}")
lines.append(f"{record},,")
files[record] = "\\n".join(lines) + "\\n"
wheel = f"{out}/{dist}-{version}-py3-none-any.whl"
with zipfile.ZipFile(wheel, "w") as zf:
    for path, text in files.items():
        zf.writestr(path, text)
print(wheel)
`;

export function writeWheel(dir: string, name: string, version: string, requires: string[] = []): string {
  mkdirSync(dir, { recursive: true });
  return execFileSync(PYTHON, ["-c", WHEEL_SCRIPT, dir, name, version, ...requires], { encoding: "utf8" }).trim();
}

/** An extension folder with out/server/: a tiny codeparrot-lsp wheel and its manifest. */
export function writeBundle(extensionRoot: string, version: string): Bundle {
  const dir = path.join(extensionRoot, "out", "server");
  const wheelPath = writeWheel(dir, "codeparrot-lsp", version, ["torch>=2.4"]);
  const bytes = readFileSync(wheelPath);
  const manifest: BundleManifest = {
    name: "codeparrot-lsp",
    version,
    requiresPython: ">=3.11",
    extras: ["fast"],
    wheel: path.basename(wheelPath),
    sha256: createHash("sha256").update(bytes).digest("hex"),
    size: bytes.length,
  };
  writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
  return { ...manifest, wheelPath };
}

/** pip offline, reading only `findLinks` (no index, no user or site pip configuration). */
export function offlinePipEnv(findLinks: string): Record<string, string> {
  return { PIP_CONFIG_FILE: "/dev/null", PIP_NO_INDEX: "1", PIP_FIND_LINKS: findLinks, PIP_DISABLE_PIP_VERSION_CHECK: "1" };
}

/** A shell script standing in for an interpreter; `body` sees the arguments as "$@". */
export function script(file: string, body: string): string {
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}
