// Builds the server wheel from this checkout and puts it, with a manifest, in out/server/ for
// the .vsix (`npm run package` runs this before vsce). The extension installs that wheel into
// its own virtual environment and checks it against the manifest's sha256 first.
//
//   node extension/package-server.mjs        (Python: $CODEPARROT_PYTHON, else python3 / python)
//
// The wheel is built from a fresh copy of the package sources (pyproject.toml, README, LICENSE,
// server/, training/): setuptools reuses a `build/` folder, and a stale one would ship modules
// that no longer exist in the tree. SOURCE_DATE_EPOCH pins the zip timestamps, so the same sources
// give the same sha256 and an unchanged server does not make the extension reinstall it.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(REPO, "out", "server");
const SOURCES = ["pyproject.toml", "README.md", "LICENSE", "server", "training"];
const EPOCH = process.env.SOURCE_DATE_EPOCH ?? "315532800"; // 1980-01-01, the earliest a zip can say

function python() {
  if (process.env.CODEPARROT_PYTHON) return process.env.CODEPARROT_PYTHON;
  for (const name of ["python3", "python"]) {
    try {
      execFileSync(name, ["--version"], { stdio: "ignore" });
      return name;
    } catch {
      // try the next name
    }
  }
  throw new Error("no python3 or python on PATH: set CODEPARROT_PYTHON to a Python 3.11+ with setuptools");
}

const skip = (src) => !/(^|[\\/])(__pycache__|[^\\/]*\.egg-info|\.mypy_cache)$|\.py[co]$/.test(src);

// Reads name, version, Requires-Python and the extras from the wheel's own METADATA.
const METADATA_SCRIPT = `
import email, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_bytes(zf.read(name))
print(json.dumps({"name": meta["Name"], "version": meta["Version"],
                  "requiresPython": meta.get("Requires-Python", ""),
                  "extras": sorted(meta.get_all("Provides-Extra") or [])}))
`;

const work = mkdtempSync(path.join(tmpdir(), "codeparrot-wheel-"));
try {
  const src = path.join(work, "src");
  for (const name of SOURCES) cpSync(path.join(REPO, name), path.join(src, name), { recursive: true, filter: skip });
  const dist = path.join(work, "dist");
  const py = python();
  execFileSync(
    py,
    ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", dist, src],
    { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH } },
  );
  const wheels = readdirSync(dist).filter((f) => f.endsWith(".whl"));
  if (wheels.length !== 1) throw new Error(`expected one wheel in ${dist}, found: ${wheels.join(", ") || "none"}`);
  const wheel = wheels[0];
  const meta = JSON.parse(execFileSync(py, ["-c", METADATA_SCRIPT, path.join(dist, wheel)], { encoding: "utf8" }));
  rmSync(OUT, { recursive: true, force: true }); // only this build's wheel goes into the .vsix
  mkdirSync(OUT, { recursive: true });
  cpSync(path.join(dist, wheel), path.join(OUT, wheel));
  const bytes = readFileSync(path.join(OUT, wheel));
  const manifest = {
    ...meta,
    wheel,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    size: statSync(path.join(OUT, wheel)).size,
  };
  writeFileSync(path.join(OUT, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  console.log(`out/server/${wheel}: ${(manifest.size / 1e6).toFixed(1)} MB, sha256 ${manifest.sha256}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
