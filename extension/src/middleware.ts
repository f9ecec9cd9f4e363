// Language client middleware: what the client asks the server, and what it does with the answers.
// Pure (type-only imports), so it runs in plain Node tests.

import type { Middleware } from "vscode-languageclient/node";

import { ACCEPT_COMMAND, type AcceptArgument, acceptArgument, shownArgument } from "./acceptance";
import type { ProgressValue } from "./status";

export interface AcceptanceHooks {
  /** The server's answer to an inline completion request: the first item's accept argument. */
  shown: (arg: AcceptArgument | undefined) => void;
  /** VS Code ran an item's accept command (the item was inserted). */
  accepted: (arg: AcceptArgument) => void;
}

export function clientMiddleware(onProgress: (value: ProgressValue) => void, hooks?: AcceptanceHooks): Middleware {
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
    provideInlineCompletionItems: async (document, position, context, token, next) => {
      const result = await next(document, position, context, token);
      hooks?.shown(shownArgument(result));
      return result;
    },
    // The server advertises codeparrot.accepted (for editors that run it through
    // workspace/executeCommand), so the client registers it as a VS Code command; an accept is
    // forwarded as the codeparrot/accepted notification instead of a request that waits.
    executeCommand: (command, args, next): unknown => {
      const arg = command === ACCEPT_COMMAND ? acceptArgument(args) : undefined;
      if (arg === undefined) return next(command, args) as unknown;
      hooks?.accepted(arg);
      return undefined;
    },
  };
}
