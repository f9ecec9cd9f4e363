// The private virtual environment the extension sets up for the server, in its global storage:
// what goes in it (CPU torch pinned, then the bundled wheel or codeparrot.installSource), how it
// is built (a fresh env-* folder each time, made current only once the server imports there) and
// how it is recorded (current.json). A failed or cancelled install removes its own folder and
// leaves the current environment as it was.

import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";

import { type Bundle, verifyWheel } from "./bundle";
import { shellQuote } from "./python";
import type { CancelToken, StepRunner } from "./steps";

/** PyTorch's own index of CPU-only wheels: on Linux, PyPI's torch is the CUDA build (~3 GB more). */
export const CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu";
export const FAST_EXTRA = "fast";
/** The CPU torch release installed first, pinned as the README's install command pins it. */
export const TORCH_VERSION = "2.13.0";

/** What the environment's codeparrot-lsp came from. */
export type ServerSource =
  | { kind: "bundled"; version: string; sha256: string }
  | { kind: "installSource"; spec: string };

/** current.json: the environment the server runs from. */
export interface EnvRecord {
  /** Folder name under the store's root. */
  env: string;
  python: string;
  source: ServerSource;
  torch: string;
  fast: boolean;
  basePython: string;
  installedAt: string;
}

/** What to install, decided from the settings and the bundle; never a bare PyPI name by default. */
export interface InstallTarget {
  source: ServerSource;
  /** The pip requirement: the bundled wheel's path, or codeparrot.installSource as written. */
  requirement: string;
  torch: string;
  /** Present for the bundled wheel: its sha256 is checked before pip reads it. */
  bundle?: Bundle;
}

export interface InstallPlan extends InstallTarget {
  basePython: string;
  fast: boolean;
}

/**
 * codeparrot.installSource when set (a local path or any pip requirement: the user's choice),
 * else the wheel bundled in the .vsix; undefined when neither exists.
 */
export function installTarget(installSource: string, bundle: Bundle | undefined, pin = TORCH_VERSION): InstallTarget | undefined {
  if (installSource) return { source: { kind: "installSource", spec: installSource }, requirement: installSource, torch: pin };
  if (bundle === undefined) return undefined;
  return {
    source: { kind: "bundled", version: bundle.version, sha256: bundle.sha256 },
    requirement: bundle.wheelPath,
    torch: pin,
    bundle,
  };
}

export function sameSource(a: ServerSource, b: ServerSource): boolean {
  return a.kind === "bundled" && b.kind === "bundled"
    ? a.sha256 === b.sha256
    : a.kind === "installSource" && b.kind === "installSource" && a.spec === b.spec;
}

export function describeSource(s: ServerSource): string {
  return s.kind === "bundled" ? `codeparrot-lsp ${s.version} (bundled)` : `codeparrot.installSource = ${s.spec}`;
}

export function envPython(envDir: string, platform: NodeJS.Platform = process.platform): string {
  return platform === "win32" ? path.join(envDir, "Scripts", "python.exe") : path.join(envDir, "bin", "python");
}

export interface Step {
  title: string;
  command: string;
  args: string[];
}

function torchRequirement(torch: string): string {
  return `torch==${torch}`;
}

/** pip arguments that install CPU torch: from PyTorch's CPU index on Linux, PyPI elsewhere (CPU-only there). */
export function torchArgs(torch: string, platform: NodeJS.Platform = process.platform): string[] {
  const index = platform === "linux" ? ["--index-url", CPU_TORCH_INDEX] : [];
  return ["-m", "pip", "install", torchRequirement(torch), ...index];
}

/** pip arguments that install the server (the torch pin repeated, so pip keeps the CPU build). */
export function serverInstallArgs(target: InstallTarget, fast: boolean): string[] {
  const req = fast ? `${target.requirement}[${FAST_EXTRA}]` : target.requirement;
  return ["-m", "pip", "install", torchRequirement(target.torch), req];
}

export function installSteps(plan: InstallPlan, envDir: string, platform: NodeJS.Platform = process.platform): Step[] {
  const py = envPython(envDir, platform);
  const what = plan.source.kind === "bundled" ? `codeparrot-lsp ${plan.source.version}` : plan.requirement;
  return [
    { title: "Creating a Python environment", command: plan.basePython, args: ["-m", "venv", envDir] },
    { title: `Installing CPU PyTorch ${plan.torch}`, command: py, args: torchArgs(plan.torch, platform) },
    {
      title: `Installing ${what}${plan.fast ? " with the llama.cpp engine (compiling)" : ""} and its dependencies`,
      command: py,
      args: serverInstallArgs(plan, plan.fast),
    },
  ];
}

/** The same install as shell commands, for the user to run by hand into an environment of their own. */
export function manualCommands(plan: InstallPlan, envDir: string, platform: NodeJS.Platform = process.platform): string[] {
  return installSteps(plan, envDir, platform).map((s) => [s.command, ...s.args].map(shellQuote).join(" "));
}

export class InstallCancelledError extends Error {
  constructor() {
    super("The server setup was cancelled; nothing was changed.");
    this.name = "InstallCancelledError";
  }
}

export class InstallFailedError extends Error {
  constructor(
    readonly step: string,
    readonly detail: string,
  ) {
    super(`The server setup failed while ${step.toLowerCase()}: ${detail}`);
    this.name = "InstallFailedError";
  }
}

export class InstallBusyError extends Error {
  constructor(readonly pid: number) {
    super(`Another VS Code window (process ${pid}) is setting up the CodeParrot server; restart this one when it is done.`);
    this.name = "InstallBusyError";
  }
}

/** Read anew each time (a plain property read would be narrowed by TypeScript after the first). */
function cancelled(token: CancelToken): boolean {
  return token.isCancellationRequested;
}

function lastLines(text: string, n = 3): string {
  return text.trim().split(/\r?\n/).slice(-n).join(" | ") || "no output";
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The environments under one root folder (the extension's global storage). */
export class EnvStore {
  constructor(readonly root: string) {}

  get recordFile(): string {
    return path.join(this.root, "current.json");
  }

  get lockFile(): string {
    return path.join(this.root, "install.lock");
  }

  async current(): Promise<EnvRecord | undefined> {
    try {
      const rec = JSON.parse(await fs.readFile(this.recordFile, "utf8")) as EnvRecord;
      return typeof rec.python === "string" && typeof rec.env === "string" ? rec : undefined;
    } catch {
      return undefined; // none yet, or unreadable: either way there is no usable environment
    }
  }

  /** Written to a temporary file and renamed: a reader sees the old record or the new, never half. */
  async commit(rec: EnvRecord): Promise<void> {
    const tmp = `${this.recordFile}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(rec, null, 2) + "\n");
    await fs.rename(tmp, this.recordFile);
  }

  /** Set while this process holds the lock: the sweep at a start may overlap an upgrade's install. */
  private held: Promise<void> | undefined;

  /**
   * One install at a time across VS Code windows; a lock left by a dead process is taken over.
   * Within this process a holder is waited for (`wait`), or not (then InstallBusyError).
   */
  async lock(wait = true): Promise<() => Promise<void>> {
    while (this.held) {
      if (!wait) throw new InstallBusyError(process.pid);
      await this.held;
    }
    let done!: () => void;
    this.held = new Promise<void>((resolve) => { done = resolve; });
    const releaseHere = (): void => {
      this.held = undefined;
      done();
    };
    try {
      await this.takeLockFile();
    } catch (err) {
      releaseHere();
      throw err;
    }
    return async () => {
      await fs.rm(this.lockFile, { force: true });
      releaseHere();
    };
  }

  private async takeLockFile(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    for (let attempt = 0; ; attempt++) {
      try {
        await fs.writeFile(this.lockFile, String(process.pid), { flag: "wx" });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
        const pid = Number(await fs.readFile(this.lockFile, "utf8").catch(() => "0"));
        if (pid > 0 && pid !== process.pid && processAlive(pid)) throw new InstallBusyError(pid);
        await fs.rm(this.lockFile, { force: true });
      }
    }
  }

  /** Removes environments other than the current one (left by upgrades); none while an install runs. */
  async sweep(): Promise<string[]> {
    let release: () => Promise<void>;
    try {
      release = await this.lock(false); // never waits: it runs again at the next start
    } catch {
      return [];
    }
    try {
      const rec = await this.current(); // read under the lock: an install may just have replaced it
      const names = await fs.readdir(this.root).catch(() => [] as string[]);
      const stale = names.filter((n) => n.startsWith("env-") && n !== rec?.env);
      for (const n of stale) await fs.rm(path.join(this.root, n), { recursive: true, force: true }).catch(() => undefined);
      return stale;
    } finally {
      await release();
    }
  }

  newEnvDir(): string {
    return path.join(this.root, `env-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`);
  }
}

export interface InstallHooks {
  runner: StepRunner;
  token: CancelToken;
  /** Each step's title as it starts. */
  onStep: (title: string, index: number, count: number) => void;
  onOutput: (text: string) => void;
  /** Does the new environment's Python import the server? Returns its version or an error detail. */
  check: (python: string) => Promise<{ ok: true; version: string } | { ok: false; detail: string }>;
}

/**
 * Builds a new environment for `plan` and makes it current. The bundled wheel's sha256 is checked
 * before anything is created. On failure or cancellation the new folder is removed, current.json
 * is untouched, and the error says what happened (InstallCancelledError / InstallFailedError).
 */
export async function installEnvironment(store: EnvStore, plan: InstallPlan, hooks: InstallHooks): Promise<EnvRecord> {
  if (plan.bundle) await verifyWheel(plan.bundle);
  const release = await store.lock();
  const envDir = store.newEnvDir();
  try {
    const steps = installSteps(plan, envDir);
    for (const [i, step] of steps.entries()) {
      if (hooks.token.isCancellationRequested) throw new InstallCancelledError();
      hooks.onStep(step.title, i, steps.length);
      hooks.onOutput(`$ ${[step.command, ...step.args].map(shellQuote).join(" ")}\n`);
      const res = await hooks.runner.run(step.command, step.args, hooks.onOutput, hooks.token);
      if (res.cancelled || cancelled(hooks.token)) throw new InstallCancelledError();
      if (res.code !== 0) throw new InstallFailedError(step.title, `exit code ${String(res.code)}: ${lastLines(res.tail)}`);
    }
    const python = envPython(envDir);
    const check = await hooks.check(python);
    if (!check.ok) throw new InstallFailedError("checking the installed server", check.detail);
    const rec: EnvRecord = {
      env: path.basename(envDir),
      python,
      source: plan.source,
      torch: plan.torch,
      fast: plan.fast,
      basePython: plan.basePython,
      installedAt: new Date().toISOString(),
    };
    await store.commit(rec);
    return rec;
  } catch (err) {
    await fs.rm(envDir, { recursive: true, force: true });
    throw err;
  } finally {
    await release();
  }
}

/** The fast (llama.cpp) extra, added to the current environment in place; pip rolls back a failed install. */
export async function installFastExtra(store: EnvStore, rec: EnvRecord, target: InstallTarget, hooks: InstallHooks): Promise<EnvRecord> {
  if (target.bundle) await verifyWheel(target.bundle);
  const release = await store.lock();
  try {
    hooks.onStep("Compiling and installing the llama.cpp engine", 0, 1);
    const args = serverInstallArgs(target, true);
    hooks.onOutput(`$ ${[rec.python, ...args].map(shellQuote).join(" ")}\n`);
    const res = await hooks.runner.run(rec.python, args, hooks.onOutput, hooks.token);
    if (res.cancelled || cancelled(hooks.token)) throw new InstallCancelledError();
    if (res.code !== 0) throw new InstallFailedError("compiling the llama.cpp engine", `exit code ${String(res.code)}: ${lastLines(res.tail)}`);
    const next = { ...rec, fast: true };
    await store.commit(next);
    return next;
  } finally {
    await release();
  }
}
