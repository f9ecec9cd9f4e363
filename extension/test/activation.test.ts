// The built bundle (out/extension.js) activated against a fake `vscode` module: commands are
// registered as package.json declares them, and an interpreter without codeparrot-lsp leads to
// the offer to set up a private environment with the wheel bundled in the extension (never a
// PyPI name), which refuses a tampered wheel. (The language client's own start and a real setup
// are covered by e2e.test.ts and tests/e2e in VS Code.)

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import Module from "node:module";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import type { Bundle } from "../src/bundle";
import { checkServerInstalled, runProcess } from "../src/python";
import { NEVER_CANCELLED, processRunner } from "../src/steps";
import { EnvStore, installEnvironment, installTarget } from "../src/venv";
import { offlinePipEnv, script, writeBundle, writeWheel } from "./wheels";

const REPO = path.resolve(__dirname, "..", "..", "..");

interface Recorded {
  commands: Map<string, (...args: unknown[]) => unknown>;
  warnings: string[];
  errors: string[];
  infos: string[];
  /** What the fake user clicks on an information message: the first of these it offers. */
  answers: string[];
  clipboard: string[];
  output: string[];
  updates: [string, unknown, unknown][];
  config: Record<string, unknown>;
}

const rec: Recorded = {
  commands: new Map(),
  warnings: [],
  errors: [],
  infos: [],
  answers: [],
  clipboard: [],
  output: [],
  updates: [],
  config: {},
};

const statusItem = {
  text: "",
  tooltip: "",
  command: "",
  backgroundColor: undefined as unknown,
  show(): void {},
  hide(): void {},
  dispose(): void {},
};

class Plain {
  readonly fake = true;
}
const disposable = { dispose(): void {} };

/** Only what extension.ts touches before the language client starts (plus classes the client subclasses). */
const fakeVscode = {
  CompletionItem: Plain,
  CodeLens: Plain,
  DocumentLink: Plain,
  CodeAction: Plain,
  Diagnostic: Plain,
  CallHierarchyItem: Plain,
  TypeHierarchyItem: Plain,
  SymbolInformation: Plain,
  InlayHint: Plain,
  CancellationError: Error,
  StatusBarAlignment: { Left: 1, Right: 2 },
  ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  ThemeColor: class {
    constructor(readonly id: string) {}
  },
  window: {
    createOutputChannel: () => ({
      append: (s: string) => rec.output.push(s),
      appendLine: (s: string) => rec.output.push(s),
      show(): void {},
      dispose(): void {},
    }),
    createStatusBarItem: () => statusItem,
    onDidChangeTextEditorSelection: () => disposable,
    onDidChangeActiveTextEditor: () => disposable,
    showWarningMessage: (msg: string) => {
      rec.warnings.push(msg);
      return Promise.resolve("Copy Command");
    },
    showErrorMessage: (msg: string) => {
      rec.errors.push(msg);
      return Promise.resolve(undefined);
    },
    showInformationMessage: (msg: string, ...items: string[]) => {
      rec.infos.push(msg);
      return Promise.resolve(items.find((i) => rec.answers.includes(i)));
    },
    showQuickPick: () => Promise.resolve(undefined),
    withProgress: (_opts: unknown, task: (progress: unknown, token: unknown) => Promise<unknown>) =>
      task({ report(): void {} }, { isCancellationRequested: false, onCancellationRequested: () => disposable }),
  },
  commands: {
    registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => {
      rec.commands.set(id, fn);
      return disposable;
    },
    executeCommand: () => Promise.resolve(undefined),
  },
  workspace: {
    onDidChangeConfiguration: () => disposable,
    getConfiguration: () => ({
      get: (key: string) => rec.config[key],
      update: (key: string, value: unknown, target: unknown) => {
        rec.updates.push([key, value, target]);
        return Promise.resolve();
      },
    }),
  },
  extensions: { getExtension: () => undefined },
  env: {
    clipboard: {
      writeText: (s: string) => {
        rec.clipboard.push(s);
        return Promise.resolve();
      },
    },
  },
};

interface ExtensionModule {
  activate(context: { subscriptions: unknown[] }): Promise<void>;
  deactivate(): Promise<void>;
}

let dir: string;
let fakePython: string;
let bundle: Bundle;
let storage: string;
let ext: ExtensionModule;
const memento = new Map<string, unknown>();
let context: {
  subscriptions: unknown[];
  extensionPath: string;
  globalStorageUri: { fsPath: string };
  globalState: { get(key: string): unknown; update(key: string, value: unknown): Promise<void> };
};

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), "codeparrot-activate-"));
  // A Python 3.11 without codeparrot-lsp, as the version and import checks see it.
  fakePython = script(
    path.join(dir, "python3"),
    `case "$*" in *"[:3]"*) echo 3.11.7 ;; *) echo "ModuleNotFoundError: No module named 'server'" >&2; exit 1 ;; esac`,
  );
  rec.config = { pythonPath: fakePython, enable: true };
  bundle = writeBundle(path.join(dir, "extension"), "0.1.0");
  storage = path.join(dir, "globalStorage");
  context = {
    subscriptions: [],
    extensionPath: path.join(dir, "extension"),
    globalStorageUri: { fsPath: storage },
    globalState: {
      get: (key) => memento.get(key),
      update: (key, value) => {
        memento.set(key, value);
        return Promise.resolve();
      },
    },
  };

  const mod = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
    _cache: Record<string, unknown>;
  };
  const resolve = mod._resolveFilename;
  mod._resolveFilename = function (request: string, ...rest: unknown[]): string {
    return request === "vscode" ? "vscode" : resolve.call(this, request, ...rest);
  };
  mod._cache.vscode = { id: "vscode", filename: "vscode", loaded: true, exports: fakeVscode };
  ext = require(path.join(REPO, "out", "extension.js")) as ExtensionModule; // eslint-disable-line @typescript-eslint/no-require-imports
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Waits for something the extension does in the background; the assertions after it say what failed. */
async function until(done: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}

describe("out/extension.js activated with a fake vscode", () => {
  it("registers exactly the commands package.json contributes", async () => {
    await ext.activate(context);
    const manifest = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as {
      contributes: { commands: { command: string }[] };
    };
    const declared = manifest.contributes.commands.map((c) => c.command).sort();
    assert.deepEqual([...rec.commands.keys()].sort(), declared);
  });

  it("offers to set up a private environment with the bundled wheel, never a PyPI name", async () => {
    await until(() => rec.infos.length > 0); // the offer does not hold up activation
    await until(() => statusItem.text.includes("cloud-download")); // dismissed
    assert.equal(rec.infos.length, 1, rec.infos.join("\n"));
    const offer = rec.infos[0] ?? "";
    assert.match(offer, /set up the completion server\?/);
    assert.match(offer, /private Python environment/);
    assert.ok(offer.includes(fakePython), offer);
    assert.match(offer, /codeparrot-lsp 0\.1\.0 \(bundled with the extension\)/);
    assert.match(offer, /CPU PyTorch 2\.13\.0/);
    assert.doesNotMatch(offer, /pip install codeparrot-lsp/);
    assert.deepEqual(rec.errors, []);
    assert.match(rec.output.join("\n"), /No module named 'server'/);
    // Dismissed: the status bar item says setup is needed, and a click offers it again.
    assert.match(statusItem.text, /\$\(cloud-download\)/);
    assert.equal(statusItem.command, "codeparrot.setupServer");
    assert.equal(existsSync(storage), false); // nothing was created without consent
  });

  it("refuses a tampered wheel when the offer is accepted, and creates nothing", async () => {
    const bytes = readFileSync(bundle.wheelPath);
    bytes[0] ^= 0xff;
    writeFileSync(bundle.wheelPath, bytes);
    rec.answers = ["Set Up"];
    await rec.commands.get("codeparrot.setupServer")?.();
    assert.equal(rec.infos.length, 2);
    assert.equal(rec.errors.length, 1, rec.errors.join("\n"));
    assert.match(rec.errors[0] ?? "", /changed or damaged after packaging/);
    assert.match(rec.errors[0] ?? "", /commands to run by hand are in the logs/);
    assert.ok(rec.output.some((l) => l.includes(`-m venv`)), rec.output.join("\n"));
    const root = path.join(storage, "server");
    assert.deepEqual(existsSync(root) ? readdirSync(root) : [], []);
  });

  it("toggles the enable setting from the status bar command", async () => {
    await rec.commands.get("codeparrot.toggle")?.();
    assert.deepEqual(rec.updates, [["enable", false, fakeVscode.ConfigurationTarget.Global]]);
  });

  it("deactivates cleanly without a running server", async () => {
    await ext.deactivate();
  });
});

describe("after an extension update that bundles another server", () => {
  const saved = { ...process.env };
  let store: EnvStore;

  before(async () => {
    // pip offline from a folder with a tiny torch, for the test's own install and the extension's.
    const findLinks = path.join(dir, "wheels");
    writeWheel(findLinks, "torch", "2.13.0");
    Object.assign(process.env, offlinePipEnv(findLinks));
    // The environment an older version of the extension set up (codeparrot-lsp 0.0.9)...
    store = new EnvStore(path.join(storage, "server"));
    const old = writeBundle(path.join(dir, "old-extension"), "0.0.9");
    const target = installTarget("", old);
    assert.ok(target);
    const host = { pythonExtensionInterpreter: () => Promise.resolve(undefined), which: () => Promise.resolve(undefined), run: runProcess };
    await installEnvironment(store, { ...target, basePython: process.env.CODEPARROT_PYTHON ?? "python3", fast: false }, {
      runner: processRunner(),
      token: NEVER_CANCELLED,
      onStep: () => undefined,
      onOutput: () => undefined,
      check: (python) => checkServerInstalled(python, host),
    });
    // ...and the new extension, which bundles 0.1.0.
    bundle = writeBundle(path.join(dir, "extension"), "0.1.0");
    rec.config = { pythonPath: "", enable: true };
    rec.infos = [];
    rec.errors = [];
    rec.output = [];
  });

  after(() => {
    for (const key of Object.keys(process.env)) if (!(key in saved)) Reflect.deleteProperty(process.env, key);
  });

  it("replaces the private environment at the next start, with a notice", async () => {
    const old = await store.current();
    assert.ok(old);
    assert.deepEqual(old.source.kind === "bundled" && old.source.version, "0.0.9");
    await ext.activate(context);
    await until(() => rec.infos.some((m) => m.includes("is now")), 120_000);
    assert.ok(rec.infos.some((m) => /updating the completion server from codeparrot-lsp 0\.0\.9 \(bundled\) to codeparrot-lsp 0\.1\.0/.test(m)), rec.infos.join("\n"));
    assert.ok(rec.infos.some((m) => m.includes("the completion server is now codeparrot-lsp 0.1.0")), rec.output.join(""));
    const now = await store.current();
    assert.ok(now);
    assert.deepEqual(now.source, { kind: "bundled", version: "0.1.0", sha256: bundle.sha256 });
    assert.notEqual(now.env, old.env);
    const host = { pythonExtensionInterpreter: () => Promise.resolve(undefined), which: () => Promise.resolve(undefined), run: runProcess };
    assert.deepEqual(await checkServerInstalled(now.python, host), { ok: true, version: "0.1.0" });
    // The start on the new environment removed the old one.
    await until(() => !existsSync(path.join(store.root, old.env)));
    assert.equal(existsSync(path.join(store.root, old.env)), false);
    await ext.deactivate();
  });
});
