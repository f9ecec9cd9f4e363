// Long-running setup commands (venv, pip) with streamed output and cancellation. Cancelling
// ends the whole process tree the command started (pip runs compilers and build backends in
// children of its own), not just its first process.

import { spawn } from "node:child_process";

/** The shape of vscode.CancellationToken, so that plain Node tests can drive cancellation. */
export interface CancelToken {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): unknown;
}

export interface StepResult {
  code: number | null;
  cancelled: boolean;
  /** The last lines of output, for error messages. */
  tail: string;
}

export interface StepRunner {
  run(command: string, args: string[], onOutput: (text: string) => void, token: CancelToken): Promise<StepResult>;
}

const TAIL_CHARS = 2000;

/** A token that is never cancelled. */
export const NEVER_CANCELLED: CancelToken = {
  isCancellationRequested: false,
  onCancellationRequested: () => undefined,
};

/** A token the caller cancels with `cancel()`, for code that is not handed one by VS Code. */
export class CancelSource implements CancelToken {
  private listeners: (() => void)[] = [];
  isCancellationRequested = false;

  onCancellationRequested(listener: () => void): void {
    this.listeners.push(listener);
  }

  cancel(): void {
    if (this.isCancellationRequested) return;
    this.isCancellationRequested = true;
    for (const l of this.listeners) l();
  }
}

/**
 * Runs commands as children of this process: on POSIX each in a process group of its own, so
 * that cancelling signals the group; on Windows `taskkill /T` ends the tree.
 */
export function processRunner(extraEnv: Record<string, string> = {}): StepRunner {
  return {
    run: (command, args, onOutput, token) =>
      new Promise<StepResult>((resolve) => {
        let tail = "";
        let cancelled = false;
        const posix = process.platform !== "win32";
        const proc = spawn(command, args, {
          env: { ...process.env, PIP_PROGRESS_BAR: "off", PIP_NO_INPUT: "1", PYTHONUNBUFFERED: "1", ...extraEnv },
          stdio: ["ignore", "pipe", "pipe"],
          detached: posix,
        });
        const kill = (): void => {
          cancelled = true;
          if (proc.pid === undefined || proc.exitCode !== null) return;
          if (posix) {
            try {
              process.kill(-proc.pid, "SIGTERM");
            } catch {
              proc.kill("SIGTERM");
            }
          } else {
            spawn("taskkill", ["/pid", String(proc.pid), "/T", "/F"], { stdio: "ignore" });
          }
        };
        if (token.isCancellationRequested) kill();
        token.onCancellationRequested(kill);
        const onData = (chunk: Buffer): void => {
          const text = chunk.toString();
          tail = (tail + text).slice(-TAIL_CHARS);
          onOutput(text);
        };
        proc.stdout.on("data", onData);
        proc.stderr.on("data", onData);
        // A command that cannot start emits "error" (and maybe no "close"): settle once, either way.
        let settled = false;
        const settle = (code: number | null): void => {
          if (settled) return;
          settled = true;
          resolve({ code, cancelled, tail });
        };
        proc.on("error", (err) => {
          onData(Buffer.from(`${err.message}\n`));
          settle(null);
        });
        proc.on("close", (code) => { settle(code); });
      }),
  };
}
