// The built bundle (out/extension.js) activated against a fake `vscode` module: commands are
// registered as package.json declares them, and an interpreter without codeparrot-lsp leads to an
// error status and an install offer with the exact pip command. (VS Code itself cannot be
// downloaded here, so the language client's own start is covered by e2e.test.ts instead.)

import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import Module from "node:module";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { installCommandLine } from "../src/python";

const REPO = path.resolve(__dirname, "..", "..", "..");

interface Recorded {
  commands: Map<string, (...args: unknown[]) => unknown>;
  warnings: string[];
  errors: string[];
  clipboard: string[];
  output: string[];
  updates: [string, unknown, unknown][];
  config: Record<string, unknown>;
}

const rec: Recorded = {
  commands: new Map(),
  warnings: [],
  errors: [],
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
    showWarningMessage: (msg: string) => {
      rec.warnings.push(msg);
      return Promise.resolve("Copy Command");
    },
    showErrorMessage: (msg: string) => {
      rec.errors.push(msg);
      return Promise.resolve(undefined);
    },
    showInformationMessage: () => Promise.resolve(undefined),
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
let ext: ExtensionModule;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), "codeparrot-activate-"));
  // An interpreter without codeparrot-lsp, as the check script sees it.
  fakePython = path.join(dir, "python3");
  writeFileSync(fakePython, "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'server'\" >&2\nexit 1\n");
  chmodSync(fakePython, 0o755);
  rec.config = { pythonPath: fakePython, enable: true };

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

describe("out/extension.js activated with a fake vscode", () => {
  it("registers exactly the commands package.json contributes", async () => {
    await ext.activate({ subscriptions: [] });
    const manifest = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as {
      contributes: { commands: { command: string }[] };
    };
    const declared = manifest.contributes.commands.map((c) => c.command).sort();
    assert.deepEqual([...rec.commands.keys()].sort(), declared);
  });

  it("offers to install codeparrot-lsp with the exact pip command and shows an error status", () => {
    const command = installCommandLine(fakePython, "");
    assert.equal(rec.warnings.length, 1);
    assert.match(rec.warnings[0] ?? "", /not installed/);
    assert.ok(rec.warnings[0]?.includes(command), rec.warnings[0]);
    assert.deepEqual(rec.clipboard, [command]); // the fake user picked "Copy Command"
    assert.ok(rec.output.some((l) => l.includes(`To install it, run: ${command}`)));
    assert.match(rec.output.join("\n"), /No module named 'server'/);
    assert.match(statusItem.text, /\$\(error\)/);
    assert.equal(statusItem.command, "codeparrot.showLogs");
  });

  it("toggles the enable setting from the status bar command", async () => {
    await rec.commands.get("codeparrot.toggle")?.();
    assert.deepEqual(rec.updates, [["enable", false, fakeVscode.ConfigurationTarget.Global]]);
  });

  it("deactivates cleanly without a running server", async () => {
    await ext.deactivate();
  });
});
