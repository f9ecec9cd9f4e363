import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import {
  checkServerInstalled,
  findInterpreter,
  interpreterFromPythonApi,
  InterpreterNotFoundError,
  type PythonHost,
  pythonVersion,
  type RunResult,
  runProcess,
  serverArgs,
  shellQuote,
  supportedVersion,
  whichOnPath,
} from "../src/python";

let dir: string;
let pyA: string; // stands for the Python extension's interpreter
let pyB: string; // stands for python3 on PATH
let notExecutable: string;

function exe(name: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, "#!/bin/sh\nexit 0\n");
  chmodSync(file, 0o755);
  return file;
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), "codeparrot-python-"));
  pyA = exe("python-from-extension");
  pyB = exe("python3");
  notExecutable = path.join(dir, "plain.txt");
  writeFileSync(notExecutable, "");
  chmodSync(notExecutable, 0o644);
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function host(opts: { extension?: string; onPath?: Record<string, string>; run?: RunResult }): PythonHost & {
  runs: string[][];
} {
  const runs: string[][] = [];
  return {
    runs,
    pythonExtensionInterpreter: () => Promise.resolve(opts.extension),
    which: (cmd) => Promise.resolve(opts.onPath?.[cmd]),
    run: (cmd, args) => {
      runs.push([cmd, ...args]);
      return Promise.resolve(opts.run ?? { code: 0, stdout: "", stderr: "" });
    },
  };
}

describe("findInterpreter", () => {
  it("uses codeparrot.pythonPath first", async () => {
    const got = await findInterpreter(pyB, host({ extension: pyA }));
    assert.deepEqual(got, { path: pyB, source: "setting" });
  });

  it("resolves a bare command name in the setting through PATH", async () => {
    const got = await findInterpreter("python3", host({ extension: pyA, onPath: { python3: pyB } }));
    assert.deepEqual(got, { path: pyB, source: "setting" });
  });

  it("fails loudly when the configured interpreter is not executable", async () => {
    await assert.rejects(findInterpreter(notExecutable, host({ extension: pyA })), (err: unknown) => {
      assert.ok(err instanceof InterpreterNotFoundError);
      assert.match(err.message, /codeparrot\.pythonPath/);
      return true;
    });
  });

  it("then the Python extension's active interpreter", async () => {
    const got = await findInterpreter("", host({ extension: pyA, onPath: { python3: pyB } }));
    assert.deepEqual(got, { path: pyA, source: "python-extension" });
  });

  it("then python3 on PATH when the Python extension is absent or broken", async () => {
    assert.deepEqual(await findInterpreter("", host({ onPath: { python3: pyB } })), { path: pyB, source: "path" });
    const broken = host({ extension: path.join(dir, "gone"), onPath: { python3: pyB } });
    assert.deepEqual(await findInterpreter("", broken), { path: pyB, source: "path" });
  });

  it("lists everything it tried when nothing is found", async () => {
    await assert.rejects(findInterpreter("", host({})), (err: unknown) => {
      assert.ok(err instanceof InterpreterNotFoundError);
      assert.match(err.message, /Python extension/);
      assert.match(err.message, /python3 on PATH/);
      return true;
    });
  });
});

describe("whichOnPath", () => {
  it("finds executables in PATH order and skips non-executables", async () => {
    const other = mkdtempSync(path.join(tmpdir(), "codeparrot-path-"));
    try {
      writeFileSync(path.join(other, "python3"), "");
      chmodSync(path.join(other, "python3"), 0o644);
      const envPath = [other, dir].join(path.delimiter);
      assert.equal(await whichOnPath("python3", envPath, [""]), pyB);
      assert.equal(await whichOnPath("no-such-tool", envPath, [""]), undefined);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe("checkServerInstalled", () => {
  it("runs the interpreter isolated from the current directory and reports the version", async () => {
    const h = host({ run: { code: 0, stdout: "0.1.0\n", stderr: "" } });
    assert.deepEqual(await checkServerInstalled(pyB, h), { ok: true, version: "0.1.0" });
    assert.equal(h.runs[0]?.[0], pyB);
    assert.equal(h.runs[0]?.[1], "-P");
  });

  it("reports the last line of the Python error when the package is missing", async () => {
    const stderr = "Traceback (most recent call last):\n  ...\nimportlib.metadata.PackageNotFoundError: codeparrot-lsp\n";
    const got = await checkServerInstalled(pyB, host({ run: { code: 1, stdout: "", stderr } }));
    assert.deepEqual(got, { ok: false, detail: "importlib.metadata.PackageNotFoundError: codeparrot-lsp" });
  });

  it("says so when a real interpreter lacks the package", async () => {
    // A real process that is not a Python with codeparrot-lsp (node rejects the -P flag) must fail the check.
    const real: PythonHost = { pythonExtensionInterpreter: () => Promise.resolve(undefined), which: () => Promise.resolve(undefined), run: runProcess };
    const got = await checkServerInstalled(process.execPath, real);
    assert.equal(got.ok, false);
  });
});

describe("runProcess", () => {
  it("collects stdout, stderr and the exit code of a real process", async () => {
    const res = await runProcess(process.execPath, ["-e", "console.log('out'); console.error('err'); process.exit(3)"], 10_000);
    assert.deepEqual(res, { code: 3, stdout: "out\n", stderr: "err\n" });
  });

  it("never rejects when the command does not exist", async () => {
    const res = await runProcess(path.join(dir, "missing"), [], 10_000);
    assert.equal(res.code, null);
    assert.match(res.stderr, /ENOENT/);
  });
});

describe("server command and versions", () => {
  it("starts the server as a module, never from the current directory", () => {
    assert.deepEqual(serverArgs(), ["-P", "-m", "server"]);
  });

  it("quotes arguments for a shell only when they need it", () => {
    assert.equal(shellQuote("/usr/bin/python3"), "/usr/bin/python3");
    assert.equal(shellQuote("torch==2.13.0"), "torch==2.13.0");
    assert.equal(shellQuote("/opt/my py/it's"), `'/opt/my py/it'"'"'s'`);
  });

  it("reads a real interpreter's version and refuses what is not a Python", async () => {
    const real: PythonHost = { pythonExtensionInterpreter: () => Promise.resolve(undefined), which: () => Promise.resolve(undefined), run: runProcess };
    const version = await pythonVersion(process.env.CODEPARROT_PYTHON ?? "python3", real);
    assert.match(version ?? "", /^3\.\d+\.\d+$/);
    assert.equal(await pythonVersion(pyB, real), undefined); // a script that prints nothing
  });

  it("needs Python 3.11 or newer", () => {
    assert.equal(supportedVersion("3.11.0"), true);
    assert.equal(supportedVersion("3.13.2"), true);
    assert.equal(supportedVersion("4.0.0"), true);
    assert.equal(supportedVersion("3.10.14"), false);
    assert.equal(supportedVersion("2.7.18"), false);
  });
});

describe("interpreterFromPythonApi", () => {
  it("uses the environments API of current Python extensions", async () => {
    const api = {
      environments: {
        getActiveEnvironmentPath: () => ({ path: "/venv" }),
        resolveEnvironment: (env: { path: string } | string) =>
          Promise.resolve({ executable: { uri: { fsPath: `${typeof env === "string" ? env : env.path}/bin/python` } } }),
      },
    };
    assert.equal(await interpreterFromPythonApi(api), "/venv/bin/python");
  });

  it("falls back to the older execution details API, but not to multi-word commands", async () => {
    assert.equal(
      await interpreterFromPythonApi({ settings: { getExecutionDetails: () => ({ execCommand: ["/usr/bin/python3.12"] }) } }),
      "/usr/bin/python3.12",
    );
    assert.equal(
      await interpreterFromPythonApi({ settings: { getExecutionDetails: () => ({ execCommand: ["conda", "run", "-n", "x", "python"] }) } }),
      undefined,
    );
    assert.equal(await interpreterFromPythonApi(undefined), undefined);
  });
});
