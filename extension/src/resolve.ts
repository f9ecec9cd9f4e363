// Which Python runs the server, decided once per start:
//   1. codeparrot.pythonPath, when that interpreter imports the server (the user's choice wins);
//   2. the private environment this extension set up (upgraded when the bundled wheel changed);
//   3. without a pythonPath: the Python extension's interpreter or python3 on PATH, when it
//      imports the server (a checkout installed with `pip install -e .`, say);
//   4. else: offer to set up the private environment, created with the interpreter found above.
// Nothing here installs anything; extension.ts asks the user first.

import type { Bundle } from "./bundle";
import { checkServerInstalled, findInterpreter, type Interpreter, isExecutable, type PythonHost } from "./python";
import { type EnvRecord, type EnvStore, type InstallTarget, installTarget, sameSource } from "./venv";

export type Origin = "setting" | "managed" | "python-extension" | "path";

export type Resolution =
  | {
      kind: "use";
      python: string;
      origin: Origin;
      version: string;
      /** The private environment in use (origin "managed"). */
      record?: EnvRecord;
      /** Set when the private environment holds another server than the one to install now. */
      upgrade?: InstallTarget;
    }
  | {
      kind: "setup";
      /** The interpreter to create the environment with; undefined when none was found. */
      base: Interpreter | undefined;
      /** Why no interpreter was found, when base is undefined. */
      baseError?: string;
      /** What the setup installs; undefined when this build bundles no server and no installSource is set. */
      target: InstallTarget | undefined;
      /** A private environment that exists but no longer runs the server (to be replaced). */
      broken?: EnvRecord;
      /** Why each interpreter looked at was not usable. */
      notes: string[];
    };

export interface ResolveInputs {
  pythonPath: string;
  installSource: string;
  bundle: Bundle | undefined;
  store: EnvStore;
  host: PythonHost;
}

/** Throws InterpreterNotFoundError only for a codeparrot.pythonPath that is not an executable. */
export async function resolveServer(inp: ResolveInputs): Promise<Resolution> {
  const notes: string[] = [];
  let base: Interpreter | undefined;
  let baseError: string | undefined;
  if (inp.pythonPath) {
    base = await findInterpreter(inp.pythonPath, inp.host);
    const check = await checkServerInstalled(base.path, inp.host);
    if (check.ok) return { kind: "use", python: base.path, origin: "setting", version: check.version };
    notes.push(`codeparrot.pythonPath ${base.path}: ${check.detail}`);
  }

  const target = installTarget(inp.installSource, inp.bundle);
  const record = await inp.store.current();
  let broken: EnvRecord | undefined;
  if (record !== undefined) {
    const check = (await isExecutable(record.python))
      ? await checkServerInstalled(record.python, inp.host)
      : { ok: false as const, detail: "its Python is gone" };
    if (check.ok) {
      const stale = target !== undefined && (!sameSource(record.source, target.source) || record.torch !== target.torch);
      const upgrade = stale ? target : undefined;
      return {
        kind: "use",
        python: record.python,
        origin: "managed",
        version: check.version,
        record,
        ...(upgrade ? { upgrade } : {}),
      };
    }
    broken = record;
    notes.push(`private environment ${record.python}: ${check.detail}`);
  }

  if (!inp.pythonPath) {
    try {
      base = await findInterpreter("", inp.host);
      const check = await checkServerInstalled(base.path, inp.host);
      if (check.ok) return { kind: "use", python: base.path, origin: base.source, version: check.version };
      notes.push(`${base.path}: ${check.detail}`);
    } catch (err) {
      baseError = err instanceof Error ? err.message : String(err);
    }
  }
  return {
    kind: "setup",
    base,
    ...(baseError !== undefined ? { baseError } : {}),
    target,
    ...(broken ? { broken } : {}),
    notes,
  };
}
