// The language client: starts `python -P -m server` over stdio with vscode-languageclient and
// wires settings and progress to it. Inline completion (LSP 3.18) is a built-in feature of
// vscode-languageclient 11, registered when the server advertises inlineCompletionProvider.

import type * as vscode from "vscode";
import { type Executable, LanguageClient, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node";

import { type AcceptanceHooks, clientMiddleware } from "./middleware";
import { serverArgs } from "./python";
import { initializationOptions, type ServerSettings } from "./settings";
import type { ProgressValue } from "./status";

export const CLIENT_ID = "codeparrot";
export const CLIENT_NAME = "CodeParrot";

/** JavaScript documents only, saved or not (the server handles exactly these two languages). */
export const DOCUMENT_SELECTOR = [
  { scheme: "file", language: "javascript" },
  { scheme: "file", language: "javascriptreact" },
  { scheme: "untitled", language: "javascript" },
  { scheme: "untitled", language: "javascriptreact" },
];

export interface ClientParams {
  python: string;
  settings: Partial<ServerSettings>;
  outputChannel: vscode.LogOutputChannel;
  onProgress: (value: ProgressValue) => void;
  acceptance?: AcceptanceHooks;
}

export function createClient(p: ClientParams): LanguageClient {
  const run: Executable = {
    command: p.python,
    args: serverArgs(),
    // No `transport`: left undefined, the client talks over the process's stdin/stdout as is.
    // `TransportKind.stdio` would append `--stdio` to the arguments, which the server rejects
    // (exit 2, then a crash loop): seen only in a real VS Code (tests/e2e).
    // The server logs to stderr, which the client copies into the output channel.
    options: { env: { ...process.env, PYTHONUNBUFFERED: "1" } },
  };
  const serverOptions: ServerOptions = { run, debug: run };
  const clientOptions: LanguageClientOptions = {
    documentSelector: DOCUMENT_SELECTOR,
    initializationOptions: initializationOptions(p.settings),
    outputChannel: p.outputChannel,
    traceOutputChannel: p.outputChannel,
    // Settings go out explicitly (extension.ts sends didChangeConfiguration), so no synchronize.
    middleware: clientMiddleware(p.onProgress, p.acceptance),
  };
  return new LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);
}
