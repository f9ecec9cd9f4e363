// Status bar state and how each state is shown. Pure view logic: extension.ts owns the real
// vscode.StatusBarItem and applies `statusView` to it (so this runs in plain Node tests).

export type ServerState =
  | { kind: "starting" }
  | { kind: "loading"; message?: string; percentage?: number }
  | { kind: "ready" }
  | { kind: "disabled" }
  /** No usable server: the private environment can be set up (the click offers it). */
  | { kind: "setup"; message: string }
  /** The private environment is being set up or updated. */
  | { kind: "installing"; message: string }
  | { kind: "error"; message: string };

export interface StatusView {
  text: string;
  tooltip: string;
  /** Command run on click: toggling completions, or the logs when something is wrong. */
  command: string;
  /** Which theme background to use: only errors stand out. */
  background: "none" | "error" | "warning";
}

export const TOGGLE_COMMAND = "codeparrot.toggle";
export const SHOW_LOGS_COMMAND = "codeparrot.showLogs";
export const SETUP_COMMAND = "codeparrot.setupServer";

function clampPercent(p: number): number {
  return Math.max(0, Math.min(100, Math.round(p)));
}

export function statusView(state: ServerState): StatusView {
  switch (state.kind) {
    case "starting":
      return {
        text: "$(sync~spin) CodeParrot",
        tooltip: "CodeParrot: starting the completion server…",
        command: SHOW_LOGS_COMMAND,
        background: "none",
      };
    case "loading": {
      const pct = state.percentage === undefined ? "" : ` ${clampPercent(state.percentage)}%`;
      return {
        text: `$(sync~spin) CodeParrot${pct}`,
        tooltip: `CodeParrot: loading the model${state.message ? ` — ${state.message}` : ""}`,
        command: SHOW_LOGS_COMMAND,
        background: "none",
      };
    }
    case "ready":
      return {
        text: "$(check) CodeParrot",
        tooltip: "CodeParrot: completions on — click to turn them off",
        command: TOGGLE_COMMAND,
        background: "none",
      };
    case "disabled":
      return {
        text: "$(circle-slash) CodeParrot",
        tooltip: "CodeParrot: completions off — click to turn them on",
        command: TOGGLE_COMMAND,
        background: "warning",
      };
    case "setup":
      return {
        text: "$(cloud-download) CodeParrot",
        tooltip: `CodeParrot: ${state.message} — click to set up the completion server`,
        command: SETUP_COMMAND,
        background: "warning",
      };
    case "installing":
      return {
        text: "$(sync~spin) CodeParrot",
        tooltip: `CodeParrot: setting up the completion server — ${state.message}`,
        command: SHOW_LOGS_COMMAND,
        background: "none",
      };
    case "error":
      return {
        text: "$(error) CodeParrot",
        tooltip: `CodeParrot: ${state.message} — click for the logs`,
        command: SHOW_LOGS_COMMAND,
        background: "error",
      };
  }
}

/** A $/progress value as the LSP defines it (WorkDoneProgressBegin/Report/End). */
export interface ProgressValue {
  kind: "begin" | "report" | "end";
  title?: string;
  message?: string;
  percentage?: number;
}

/**
 * Next state after a work-done progress notification. The server's only progress is model
 * loading; `enabled` decides what "done" looks like.
 */
export function stateAfterProgress(value: ProgressValue, enabled: boolean): ServerState {
  if (value.kind === "end") {
    // The server ends the progress with "Model failed to load" (details follow in showMessage).
    if (value.message !== undefined && /fail|error/i.test(value.message)) {
      return { kind: "error", message: value.message };
    }
    return enabled ? { kind: "ready" } : { kind: "disabled" };
  }
  const message = value.message ?? value.title;
  return {
    kind: "loading",
    ...(message !== undefined ? { message } : {}),
    ...(value.percentage !== undefined ? { percentage: value.percentage } : {}),
  };
}
