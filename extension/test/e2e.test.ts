// End to end: the real Python server (`python -P -m server`, the arguments the extension uses)
// over stdio, spoken to with vscode-languageserver-protocol — the protocol layer underneath
// vscode-languageclient, which itself needs a running VS Code.
//
// Environment: CODEPARROT_PYTHON (default python3), CODEPARROT_TEST_MODEL (a model dir; when
// unset, the tiny test GPT-2 of tests/tiny_model.py is built and trained for a few seconds with
// tests/server/lsp_wire.py so that it completes the snippets below: random weights produce noise
// that post-processing rightly drops). Missing Python dependencies make this test fail with the
// server's own error, never skip.

import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  CancellationTokenSource,
  CompletionRequest,
  createProtocolConnection,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  type InlineCompletionItem,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  LSPErrorCodes,
  type ProtocolConnection,
  ResponseError,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from "vscode-languageserver-protocol/node";

import { serverArgs } from "../src/python";
import { didChangeConfigurationParams, initializationOptions } from "../src/settings";
import { STATS_METHOD } from "../src/stats";

const REPO = path.resolve(__dirname, "..", "..", "..");
const PYTHON = process.env.CODEPARROT_PYTHON ?? "python3";
const URI = "file:///tmp/codeparrot-e2e/example.js";
const TIMEOUT_MS = 180_000;

let tempDir: string | undefined;
let modelDir: string;
let proc: ChildProcessWithoutNullStreams;
let conn: ProtocolConnection;
let stderr = "";
const progress: string[] = [];

function buildTinyModel(): string {
  tempDir = mkdtempSync(path.join(tmpdir(), "codeparrot-e2e-"));
  const script = [
    "import sys",
    "from pathlib import Path",
    "sys.path[:0] = ['tests', 'tests/server']",
    "from tiny_model import build_tiny_model",
    "from lsp_wire import trained_model_dir",
    "base = build_tiny_model(Path(sys.argv[1]) / 'random')",
    "trained_model_dir(base, Path(sys.argv[1]) / 'trained')",
  ].join("\n");
  execFileSync(PYTHON, ["-c", script, tempDir], { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
  return path.join(tempDir, "trained");
}

/** Fail with the server's stderr attached: that is where a missing dependency shows up. */
function withServerLog(err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err);
  return new Error(`${msg}\n--- server stderr (last 3000 chars) ---\n${stderr.slice(-3000)}`);
}

before(async () => {
  modelDir = process.env.CODEPARROT_TEST_MODEL ?? buildTinyModel();
  // PYTHONPATH: test this checkout's server even when an older codeparrot-lsp is installed.
  proc = spawn(PYTHON, [...serverArgs(), "--model", modelDir], {
    cwd: tmpdir(),
    env: { ...process.env, PYTHONPATH: REPO, HF_HUB_OFFLINE: "1", PYTHONUNBUFFERED: "1" },
  });
  proc.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<never>((_, reject) => {
    proc.on("exit", (code) => {
      reject(withServerLog(new Error(`server exited early with code ${String(code)}`)));
    });
  });
  exited.catch(() => undefined); // only observed through the race below
  conn = createProtocolConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
  conn.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    conn.onProgress(WorkDoneProgress.type, token, (value) => {
      progress.push(value.kind);
    });
  });
  conn.listen();
  const init = conn.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: null, // eslint-disable-line @typescript-eslint/no-deprecated -- required (nullable) in InitializeParams
    workspaceFolders: null,
    capabilities: {
      window: { workDoneProgress: true },
      textDocument: { inlineCompletion: { dynamicRegistration: false } },
    },
    initializationOptions: initializationOptions({ maxNewTokens: 24, multiline: "auto" }),
  });
  const result = await Promise.race([init, exited]).catch((err: unknown) => {
    throw withServerLog(err);
  });
  assert.ok(result.capabilities.inlineCompletionProvider, "server must advertise inlineCompletionProvider");
  assert.ok(result.capabilities.completionProvider, "server must advertise completionProvider");
  await conn.sendNotification(InitializedNotification.type, {});
});

after(async () => {
  if (proc.exitCode === null) {
    proc.kill();
  }
  conn.dispose();
  if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
  await Promise.resolve();
});

// The trained tiny model completes `require(` here (the same snippet the server's tests use).
const TEXT = "const fs = re";

function endOf(text: string): { line: number; character: number } {
  const lines = text.split("\n");
  return { line: lines.length - 1, character: (lines[lines.length - 1] ?? "").length };
}

describe("python -m server over stdio", { timeout: TIMEOUT_MS }, () => {
  it("opens, edits and answers inline completion with insertText and a range", async () => {
    await conn.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: URI, languageId: "javascript", version: 1, text: TEXT },
    });
    // Incremental edit: type "q" (the server syncs incrementally).
    const pos = endOf(TEXT);
    await conn.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: URI, version: 2 },
      contentChanges: [{ range: { start: pos, end: pos }, text: "q" }],
    });
    const at = { line: pos.line, character: pos.character + 1 };
    // The first request starts the model load; the server answers empty while loading (after a
    // bounded wait), so ask again until the model is ready or the deadline passes.
    const deadline = Date.now() + TIMEOUT_MS - 30_000;
    let items: InlineCompletionItem[] = [];
    for (;;) {
      const loadedBefore = progress.includes("end");
      const list = await conn
        .sendRequest(InlineCompletionRequest.type, {
          textDocument: { uri: URI },
          position: at,
          context: { triggerKind: InlineCompletionTriggerKind.Automatic },
        })
        .catch((err: unknown) => {
          throw withServerLog(err);
        });
      assert.ok(list !== null, "inline completion answered null");
      items = Array.isArray(list) ? list : list.items;
      if (items.length > 0 || loadedBefore || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.ok(items.length > 0, withServerLog(new Error("no inline completion items")).message);
    for (const item of items) {
      assert.equal(typeof item.insertText, "string");
      assert.ok((item.insertText as string).length > 0, "empty insertText");
      assert.ok(item.range, "item has no range");
      assert.deepEqual(item.range.start, at);
    }
    assert.ok(progress.includes("begin") && progress.includes("end"), `model loading progress: ${progress.join(",")}`);
  });

  it("answers classic completion with a text edit ending at the cursor", async () => {
    const at = { ...endOf(TEXT), character: endOf(TEXT).character + 1 };
    const res = await conn.sendRequest(CompletionRequest.type, { textDocument: { uri: URI }, position: at });
    assert.ok(res !== null && !Array.isArray(res), "expected a CompletionList");
    assert.ok(res.items.length > 0, "no completion items");
    const edit = res.items[0]?.textEdit;
    assert.ok(edit && "range" in edit, "completion item without textEdit.range");
    assert.deepEqual(edit.range.end, at);
    // It replaces the word before the cursor ("req") and extends it.
    assert.deepEqual(edit.range.start, { line: 0, character: "const fs = ".length });
    assert.ok(edit.newText.startsWith("req") && edit.newText.length > 3, edit.newText);
  });

  it("answers a cancelled request (result or RequestCancelled) and keeps serving", async () => {
    const source = new CancellationTokenSource();
    // A fresh document (no cache hit): the cancel reaches a request that has real work to do.
    const uri2 = "file:///tmp/codeparrot-e2e/block.js";
    await conn.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: uri2, languageId: "javascript", version: 1, text: "function add(a, b) {\n\n}\n" },
    });
    const pending = conn.sendRequest(
      InlineCompletionRequest.type,
      {
        textDocument: { uri: uri2 },
        position: { line: 1, character: 0 },
        context: { triggerKind: InlineCompletionTriggerKind.Invoked },
      },
      source.token,
    );
    source.cancel(); // sends $/cancelRequest
    const outcome = await pending.then(
      () => "answered",
      (err: unknown) => {
        assert.ok(err instanceof ResponseError, `unexpected failure: ${String(err)}`);
        assert.equal(err.code, LSPErrorCodes.RequestCancelled);
        return "cancelled";
      },
    );
    assert.match(outcome, /^(answered|cancelled)$/);
    // Still alive: settings change then a stats request.
    await conn.sendNotification("workspace/didChangeConfiguration", didChangeConfigurationParams({ enable: true }));
    const stats = await conn.sendRequest<{ requests: number; stages_ms: object }>(STATS_METHOD, {});
    assert.ok(stats.requests >= 2, `stats.requests = ${String(stats.requests)}`);
    assert.equal(typeof stats.stages_ms, "object");
  });

  it("returns nothing while disabled", async () => {
    await conn.sendNotification("workspace/didChangeConfiguration", didChangeConfigurationParams({ enable: false }));
    const at = { ...endOf(TEXT), character: endOf(TEXT).character + 1 };
    const list = await conn.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri: URI },
      position: at,
      context: { triggerKind: InlineCompletionTriggerKind.Invoked },
    });
    const items = list === null ? [] : Array.isArray(list) ? list : list.items;
    assert.equal(items.length, 0);
    await conn.sendNotification("workspace/didChangeConfiguration", didChangeConfigurationParams({ enable: true }));
  });

  it("shuts down and exits cleanly", async () => {
    const exited = new Promise<number | null>((resolve) => proc.on("exit", resolve));
    await conn.sendRequest(ShutdownRequest.type);
    await conn.sendNotification(ExitNotification.type);
    assert.equal(await exited, 0);
  });
});
