// Language client middleware: what the client asks the server, and what it does with the answers.
// Pure (type-only imports), so it runs in plain Node tests.

import type { Middleware } from "vscode-languageclient/node";

import type { ProgressValue } from "./status";

export function clientMiddleware(onProgress: (value: ProgressValue) => void): Middleware {
  return {
    handleWorkDoneProgress: (token, params, next) => {
      onProgress(params);
      next(token, params);
    },
    // VS Code shows completions as ghost text (textDocument/inlineCompletion). The server also
    // answers classic textDocument/completion, for editors without ghost text; in VS Code that
    // opened the suggest widget with the same text on every trigger character (space, `(`, `=`,
    // …), and Tab then accepted the widget's item rather than the ghost text (seen in a real
    // VS Code, tests/e2e). So the client never asks for it.
    provideCompletionItem: () => undefined,
  };
}
