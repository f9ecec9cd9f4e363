// Accepted completions and where a copy came from. The server gives every inline item a
// `command` (codeparrot.accepted, with the item's id, source and, for a copy, its origin
// `path:line`); VS Code runs it after inserting the item, and the extension forwards it to the
// server as a `codeparrot/accepted` notification. Counts stay in the server's memory (Show Stats);
// nothing is sent anywhere else. Pure (no vscode import), so it runs in plain Node tests.

export const ACCEPT_COMMAND = "codeparrot.accepted";
export const ACCEPTED_METHOD = "codeparrot/accepted";

/** What the server puts in an item's accept command. */
export interface AcceptArgument {
  id: string;
  source?: string;
  /** A copy's or an analogy's origin, `path:line` relative to the workspace folder. */
  from?: string;
  /** Characters of the item accepted, for a partial accept (absent: all of it). */
  acceptedLength?: number;
}

/** The argument of an accept command, or undefined when `args` carry none. */
export function acceptArgument(args: readonly unknown[] | undefined): AcceptArgument | undefined {
  const first: unknown = args?.[0];
  if (typeof first !== "object" || first === null) return undefined;
  const raw = first as Record<string, unknown>;
  if (typeof raw.id !== "string") return undefined;
  const arg: AcceptArgument = { id: raw.id };
  if (typeof raw.source === "string") arg.source = raw.source;
  if (typeof raw.from === "string") arg.from = raw.from;
  return arg;
}

/** The shape of an inline item this module reads (vscode.InlineCompletionItem has it). */
export interface ItemLike {
  command?: { command: string; arguments?: unknown[] };
}

/** The accept argument of the first item the server answered with, if any. */
export function shownArgument(result: unknown): AcceptArgument | undefined {
  const items: unknown = Array.isArray(result)
    ? result
    : typeof result === "object" && result !== null
      ? (result as { items?: unknown }).items
      : undefined;
  if (!Array.isArray(items) || items.length === 0) return undefined;
  const command = (items[0] as ItemLike).command;
  return command?.command === ACCEPT_COMMAND ? acceptArgument(command.arguments) : undefined;
}

export interface OriginView {
  text: string;
  tooltip: string;
}

/** The status bar's words for a ghost text copied from `from` (undefined: nothing to show). */
export function originView(arg: AcceptArgument | undefined): OriginView | undefined {
  if (arg?.from === undefined) return undefined;
  const kind = arg.source === "analogy" ? "the line after a similar one in" : "copied from";
  return {
    text: `$(references) ${arg.from}`,
    tooltip: `CodeParrot: this suggestion is ${kind} ${arg.from}`,
  };
}

/** `path:line` split, the line 1-based; undefined when `from` is not of that form. */
export function originLocation(from: string): { path: string; line: number } | undefined {
  const match = /^(.+):(\d+)$/.exec(from);
  if (match === null) return undefined;
  const [, file, digits] = match;
  const line = Number(digits);
  return line >= 1 ? { path: file, line } : undefined;
}
