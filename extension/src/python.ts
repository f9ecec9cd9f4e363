// Finding the Python interpreter that runs the server and checking that codeparrot-lsp is
// importable there (installing it is venv.ts's business). The vscode API and the
// process/file system enter through `PythonHost`, so the logic runs in plain Node tests.

import { execFile } from "node:child_process";
import { constants as fsConstants, promises as fs } from "node:fs";
import * as path from "node:path";

export type InterpreterSource = "setting" | "python-extension" | "path";

export interface Interpreter {
  path: string;
  source: InterpreterSource;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Everything discovery needs from the outside world. */
export interface PythonHost {
  /** The Python extension's active interpreter, or undefined when it is absent or has none. */
  pythonExtensionInterpreter(): Promise<string | undefined>;
  /** Absolute path of an executable found on PATH, or undefined. */
  which(command: string): Promise<string | undefined>;
  run(command: string, args: string[], timeoutMs: number): Promise<RunResult>;
}

export class InterpreterNotFoundError extends Error {
  constructor(readonly tried: string[]) {
    super(
      `No Python interpreter found (tried: ${tried.join("; ")}). ` +
        "Install Python 3.11+ or set codeparrot.pythonPath to its path.",
    );
    this.name = "InterpreterNotFoundError";
  }
}

/** Names tried on PATH, in order; Windows installs `python`, most Unix systems `python3`. */
export const PATH_CANDIDATES = process.platform === "win32" ? ["python", "python3"] : ["python3", "python"];

/**
 * Resolve the interpreter: codeparrot.pythonPath, else the Python extension's active
 * interpreter, else python3 on PATH. A configured path that does not exist is an error (not a
 * silent fallback): the user asked for that interpreter.
 */
export async function findInterpreter(configured: string, host: PythonHost): Promise<Interpreter> {
  const tried: string[] = [];
  if (configured) {
    const resolved = path.isAbsolute(configured) ? configured : await host.which(configured);
    if (resolved !== undefined && (await isExecutable(resolved))) {
      return { path: resolved, source: "setting" };
    }
    throw new InterpreterNotFoundError([`codeparrot.pythonPath = ${configured} (not an executable)`]);
  }
  const fromExtension = await host.pythonExtensionInterpreter().catch(() => undefined);
  if (fromExtension) {
    if (await isExecutable(fromExtension)) {
      return { path: fromExtension, source: "python-extension" };
    }
    tried.push(`Python extension interpreter ${fromExtension} (not an executable)`);
  } else {
    tried.push("Python extension (not installed or no interpreter selected)");
  }
  for (const name of PATH_CANDIDATES) {
    const found = await host.which(name);
    if (found !== undefined) {
      return { path: found, source: "path" };
    }
    tried.push(`${name} on PATH`);
  }
  throw new InterpreterNotFoundError(tried);
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return false;
    if (process.platform !== "win32") await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `-P` (Python 3.11+): never import a `server` package from the current directory instead of ours. */
export const SAFE_PATH_FLAG = "-P";

/** Prints the installed version; fails when the package or the `server` module is missing. */
const CHECK_SCRIPT = [
  "import importlib.metadata as m, importlib.util as u, sys",
  "assert sys.version_info >= (3, 11), 'Python ' + sys.version.split()[0] + ' is too old (3.11+ needed)'",
  "spec = u.find_spec('server.__main__')",
  "assert spec is not None, 'module server.__main__ not found'",
  "print(m.version('codeparrot-lsp'))",
].join("\n");

export type ServerCheck = { ok: true; version: string } | { ok: false; detail: string };

/** Is codeparrot-lsp importable by this interpreter? */
export async function checkServerInstalled(python: string, host: PythonHost): Promise<ServerCheck> {
  const res = await host.run(python, [SAFE_PATH_FLAG, "-c", CHECK_SCRIPT], 30_000);
  if (res.code === 0) {
    return { ok: true, version: res.stdout.trim() };
  }
  const lines = (res.stderr || res.stdout).trim().split(/\r?\n/);
  return { ok: false, detail: lines[lines.length - 1] || `exit code ${String(res.code)}` };
}

/** Prints `major.minor.micro` of an interpreter. */
const VERSION_SCRIPT = "import sys; print('%d.%d.%d' % sys.version_info[:3])";

/** The interpreter's version, e.g. "3.11.7", or undefined when it does not run as a Python. */
export async function pythonVersion(python: string, host: PythonHost): Promise<string | undefined> {
  const res = await host.run(python, ["-c", VERSION_SCRIPT], 30_000);
  const v = res.stdout.trim();
  return res.code === 0 && /^\d+\.\d+\.\d+$/.test(v) ? v : undefined;
}

/** Python 3.11+ (the server's Requires-Python, and `-P`). */
export function supportedVersion(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 3 || (major === 3 && minor >= 11);
}

export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'"'"'`)}'`;
}

/** Arguments that start the server over stdio. */
export function serverArgs(): string[] {
  return [SAFE_PATH_FLAG, "-m", "server"];
}

/** Search PATH like a shell would (Node has no `which`). */
export async function whichOnPath(
  command: string,
  envPath: string = process.env.PATH ?? "",
  exts: string[] = process.platform === "win32" ? [".exe", ".cmd", ".bat", ""] : [""],
): Promise<string | undefined> {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, command + ext);
      if (await isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

/** Run a process, collecting its output; never rejects (a spawn failure is code null). */
export function runProcess(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
      resolve({ code, stdout, stderr: stderr || (error?.message ?? "") });
    });
  });
}

/** The part of the ms-python.python extension API we use (both its old and new shapes). */
export interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: unknown): { path: string } | undefined;
    resolveEnvironment(
      env: { path: string } | string,
    ): Promise<{ executable: { uri?: { fsPath: string } } } | undefined>;
  };
  settings?: {
    getExecutionDetails(resource?: unknown): { execCommand: string[] | undefined };
  };
}

/** The active interpreter according to the Python extension's API, if it says one. */
export async function interpreterFromPythonApi(api: PythonExtensionApi | undefined): Promise<string | undefined> {
  if (api === undefined) return undefined;
  if (api.environments) {
    const active = api.environments.getActiveEnvironmentPath();
    if (active) {
      const resolved = await api.environments.resolveEnvironment(active);
      const exe = resolved?.executable.uri?.fsPath;
      if (exe) return exe;
    }
  }
  const exec = api.settings?.getExecutionDetails().execCommand;
  // execCommand can be e.g. ["conda", "run", ...]: only a single executable path is usable here.
  if (exec && exec.length === 1 && exec[0]) return exec[0];
  return undefined;
}

/** A PythonHost on the real process and PATH; the Python extension lookup is injected. */
export function nodePythonHost(pythonExtension: () => Promise<PythonExtensionApi | undefined>): PythonHost {
  return {
    pythonExtensionInterpreter: async () => interpreterFromPythonApi(await pythonExtension()),
    which: (command) => whichOnPath(command),
    run: runProcess,
  };
}
