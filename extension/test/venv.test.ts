// The private environment: what is installed from where, and what a tampered wheel, a failed
// step, a cancel or a second window leave behind. One test builds a real venv with the real
// Python and installs tiny real wheels into it with pip, offline.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { type Bundle, TamperedWheelError } from "../src/bundle";
import { checkServerInstalled, type PythonHost, runProcess } from "../src/python";
import { CancelSource, NEVER_CANCELLED, processRunner, type StepRunner } from "../src/steps";
import {
  CPU_TORCH_INDEX,
  type EnvRecord,
  EnvStore,
  InstallBusyError,
  InstallCancelledError,
  installEnvironment,
  InstallFailedError,
  type InstallHooks,
  type InstallPlan,
  installSteps,
  installTarget,
  manualCommands,
  torchArgs,
} from "../src/venv";
import { offlinePipEnv, PYTHON, script, writeBundle, writeWheel } from "./wheels";

const realHost: PythonHost = {
  pythonExtensionInterpreter: () => Promise.resolve(undefined),
  which: () => Promise.resolve(undefined),
  run: runProcess,
};

let dir: string;
let bundle: Bundle;
let findLinks: string;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), "codeparrot-venv-"));
  bundle = writeBundle(path.join(dir, "extension"), "0.1.0");
  findLinks = path.join(dir, "wheels");
  writeWheel(findLinks, "torch", "2.13.0");
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function hooks(runner: StepRunner, token = NEVER_CANCELLED): InstallHooks & { steps: string[]; output: string[] } {
  const steps: string[] = [];
  const output: string[] = [];
  return {
    steps,
    output,
    runner,
    token,
    onStep: (title) => steps.push(title),
    onOutput: (text) => output.push(text),
    check: (python) => checkServerInstalled(python, realHost),
  };
}

function plan(basePython: string, b: Bundle = bundle): InstallPlan {
  const target = installTarget("", b);
  assert.ok(target);
  return { ...target, basePython, fast: false };
}

const previous: EnvRecord = {
  env: "env-previous",
  python: "/nowhere/bin/python",
  source: { kind: "bundled", version: "0.0.9", sha256: "0".repeat(64) },
  torch: "2.13.0",
  fast: false,
  basePython: "/usr/bin/python3",
  installedAt: "2026-01-01T00:00:00.000Z",
};

/** A store that already has a working setup (a record and its folder), to see that it survives. */
async function storeWithPrevious(name: string): Promise<EnvStore> {
  const store = new EnvStore(path.join(dir, name));
  mkdirSync(path.join(store.root, previous.env), { recursive: true });
  await store.commit(previous);
  return store;
}

/** Alive and not a zombie (an orphan killed here may wait for a reaper that a container lacks). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "";
  return !/^\d+ \(.*\) [ZX]/.test(stat);
}

function envDirs(store: EnvStore): string[] {
  return readdirSync(store.root).filter((n) => n.startsWith("env-"));
}

describe("what the setup installs", () => {
  it("installs the bundled wheel by default, never a bare PyPI name", () => {
    const target = installTarget("", bundle);
    assert.ok(target);
    assert.equal(target.requirement, bundle.wheelPath);
    assert.deepEqual(target.source, { kind: "bundled", version: "0.1.0", sha256: bundle.sha256 });
    // A build without a bundled server has nothing to install unless codeparrot.installSource says what.
    assert.equal(installTarget("", undefined), undefined);
    const steps = installSteps(plan("/usr/bin/python3"), "/env", "linux").flatMap((s) => s.args);
    assert.ok(!steps.includes("codeparrot-lsp"), steps.join(" "));
  });

  it("installs codeparrot.installSource instead when it is set", () => {
    const target = installTarget("/src/codeparrot-lsp", bundle);
    assert.ok(target);
    assert.equal(target.requirement, "/src/codeparrot-lsp");
    assert.equal(target.bundle, undefined);
    assert.equal(target.torch, "2.13.0");
  });

  it("takes CPU torch from PyTorch's CPU index on Linux and from PyPI elsewhere, pinned", () => {
    assert.deepEqual(torchArgs("2.13.0", "linux"), ["-m", "pip", "install", "torch==2.13.0", "--index-url", CPU_TORCH_INDEX]);
    assert.deepEqual(torchArgs("2.13.0", "darwin"), ["-m", "pip", "install", "torch==2.13.0"]);
    assert.deepEqual(torchArgs("2.13.0", "win32"), ["-m", "pip", "install", "torch==2.13.0"]);
  });

  it("spells out the same steps for a by-hand install", () => {
    const lines = manualCommands(plan("/usr/bin/python3"), "/home/me/.venvs/codeparrot-lsp", "linux");
    assert.deepEqual(lines, [
      "/usr/bin/python3 -m venv /home/me/.venvs/codeparrot-lsp",
      `/home/me/.venvs/codeparrot-lsp/bin/python -m pip install torch==2.13.0 --index-url ${CPU_TORCH_INDEX}`,
      `/home/me/.venvs/codeparrot-lsp/bin/python -m pip install torch==2.13.0 ${bundle.wheelPath}`,
    ]);
  });
});

describe("installEnvironment", () => {
  it("creates a real venv, installs the bundled wheel with pip and makes it current", async () => {
    const store = await storeWithPrevious("real");
    const h = hooks(processRunner(offlinePipEnv(findLinks)));
    const rec = await installEnvironment(store, plan(PYTHON), h);
    assert.equal(h.steps.length, 3, h.output.join(""));
    assert.deepEqual(await store.current(), rec);
    assert.deepEqual(rec.source, { kind: "bundled", version: "0.1.0", sha256: bundle.sha256 });
    assert.deepEqual(await checkServerInstalled(rec.python, realHost), { ok: true, version: "0.1.0" });
    const torch = await runProcess(rec.python, ["-c", "import torch; print(torch.__version__)"], 30_000);
    assert.equal(torch.stdout.trim(), "2.13.0");
    assert.equal(existsSync(store.lockFile), false);
    // The previous environment is removed by the next sweep, not while it may still be running.
    assert.deepEqual(envDirs(store).sort(), [previous.env, rec.env].sort());
    assert.deepEqual(await store.sweep(), [previous.env]);
    assert.deepEqual(envDirs(store), [rec.env]);
  });

  it("refuses a tampered wheel before creating anything", async () => {
    const root = path.join(dir, "tampered-ext");
    const b = writeBundle(root, "0.1.0");
    const bytes = readFileSync(b.wheelPath);
    bytes[bytes.length - 1] ^= 0xff; // one flipped byte
    writeFileSync(b.wheelPath, bytes);
    const store = await storeWithPrevious("tampered");
    const runs: string[] = [];
    const runner: StepRunner = {
      run: (command, args) => {
        runs.push([command, ...args].join(" "));
        return Promise.resolve({ code: 0, cancelled: false, tail: "" });
      },
    };
    await assert.rejects(installEnvironment(store, plan(PYTHON, b), hooks(runner)), (err: unknown) => {
      assert.ok(err instanceof TamperedWheelError);
      assert.match(err.message, /does not match the extension's manifest/);
      assert.match(err.message, /was not installed/);
      assert.ok(err.message.includes(b.sha256));
      return true;
    });
    assert.deepEqual(runs, []);
    assert.deepEqual(await store.current(), previous);
    assert.deepEqual(envDirs(store), [previous.env]);
  });

  it("a cancelled install ends pip's process tree and leaves nothing half-made", async () => {
    const store = await storeWithPrevious("cancelled");
    const pidFile = path.join(dir, "pip.pid");
    // A stand-in Python: `-m venv DIR` makes DIR/bin/python, whose `-m pip` starts a long child.
    const base = script(
      path.join(dir, "python-slow-pip"),
      [
        'mkdir -p "$3/bin"',
        "cat > \"$3/bin/python\" <<'EOF'",
        "#!/bin/sh",
        `sleep 300 & echo $! > ${pidFile}`,
        "wait",
        "EOF",
        'chmod +x "$3/bin/python"',
      ].join("\n"),
    );
    const cancel = new CancelSource();
    const h = hooks(processRunner(), cancel);
    h.onStep = (title, index) => {
      h.steps.push(title);
      if (index === 1) setTimeout(() => { cancel.cancel(); }, 500); // while "pip" runs
    };
    await assert.rejects(installEnvironment(store, plan(base), h), InstallCancelledError);
    assert.deepEqual(h.steps.length, 2);
    assert.deepEqual(await store.current(), previous);
    assert.deepEqual(envDirs(store), [previous.env]);
    assert.equal(existsSync(store.lockFile), false);
    const pid = Number(readFileSync(pidFile, "utf8"));
    assert.equal(running(pid), false, "pip's child process is still running");
  });

  it("a failed step says which and why, and keeps the previous setup", async () => {
    const store = await storeWithPrevious("failed");
    const base = script(
      path.join(dir, "python-no-venv"),
      'echo "The virtual environment was not created successfully because ensurepip is not available." >&2; exit 1',
    );
    await assert.rejects(installEnvironment(store, plan(base), hooks(processRunner())), (err: unknown) => {
      assert.ok(err instanceof InstallFailedError);
      assert.match(err.message, /creating a python environment/);
      assert.match(err.message, /ensurepip is not available/);
      return true;
    });
    assert.deepEqual(await store.current(), previous);
    assert.deepEqual(envDirs(store), [previous.env]);
  });

  it("one install at a time across windows; a lock left by a dead process is taken over", async () => {
    const store = new EnvStore(path.join(dir, "locked"));
    mkdirSync(store.root, { recursive: true });
    const other = spawn("sleep", ["30"]);
    try {
      writeFileSync(store.lockFile, String(other.pid));
      await assert.rejects(store.lock(), InstallBusyError);
    } finally {
      other.kill();
    }
    await new Promise((resolve) => other.on("exit", resolve));
    const release = await store.lock(); // its holder is gone now
    assert.equal(readFileSync(store.lockFile, "utf8"), String(process.pid));
    await release();
    assert.equal(existsSync(store.lockFile), false);
  });

  it("in one window, a sweep never waits for an install and an install waits for a sweep", async () => {
    const store = new EnvStore(path.join(dir, "inprocess"));
    mkdirSync(path.join(store.root, "env-old"), { recursive: true });
    const release = await store.lock();
    assert.deepEqual(await store.sweep(), []); // skipped, not queued
    let second = false;
    const next = store.lock().then((r) => {
      second = true;
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(second, false);
    await release();
    await (await next)();
    assert.equal(second, true);
    assert.deepEqual(await store.sweep(), ["env-old"]);
  });
});
