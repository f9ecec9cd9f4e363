// The setup as the user sees it: the offer, progress with a cancel button, the upgrade notice,
// the second (timed) offer of the llama.cpp engine, and the commands to run by hand when
// something fails. The decisions live in resolve.ts and venv.ts; this module only asks and shows.

import { homedir } from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";

import { verifyWheel } from "./bundle";
import { checkServerInstalled, type Interpreter, pythonVersion, type PythonHost, supportedVersion } from "./python";
import type { Resolution } from "./resolve";
import type { ServerState } from "./status";
import type { StepRunner } from "./steps";
import {
  CPU_TORCH_INDEX,
  describeSource,
  type EnvRecord,
  type EnvStore,
  envPython,
  FAST_EXTRA,
  InstallBusyError,
  InstallCancelledError,
  installEnvironment,
  InstallFailedError,
  installFastExtra,
  type InstallHooks,
  type InstallPlan,
  type InstallTarget,
  manualCommands,
  serverInstallArgs,
  torchArgs,
} from "./venv";

export const SET_UP = "Set Up";
export const OTHER_OPTIONS = "Other Options…";
export const BUILD_FAST = "Build It (about 15 min)";
export const NOT_NOW = "Not Now";
export const NEVER = "Don't Ask Again";
const COPY_COMMANDS = "Copy Commands";
const SHOW_LOGS = "Show Logs";
const FAST_DECLINED_KEY = "codeparrot.fastEngineDeclined";

/** Where the commands for a by-hand install put their environment. */
const MANUAL_ENV = path.join(homedir(), ".venvs", "codeparrot-lsp");

export interface SetupDeps {
  output: vscode.LogOutputChannel;
  store: EnvStore;
  host: PythonHost;
  runner: StepRunner;
  memento: vscode.Memento;
  setStatus(state: ServerState): void;
}

type SetupResolution = Extract<Resolution, { kind: "setup" }>;

export type OfferOutcome = { kind: "installed"; record: EnvRecord } | { kind: "retry" } | { kind: "declined" };

export class ServerSetup {
  constructor(private readonly d: SetupDeps) {}

  /**
   * Offers the private environment; "retry" when the server was installed elsewhere (resolve
   * again). `modal`: asked for with a command, so a dialog rather than a notification.
   */
  async offer(res: SetupResolution, modal = false): Promise<OfferOutcome> {
    for (const note of res.notes) this.d.output.appendLine(`[setup] not usable: ${note}`);
    const { target, base } = res;
    if (target === undefined) {
      return this.cannot(
        "this build of the extension bundles no server. Set codeparrot.installSource (a checkout's path or a pip requirement) or codeparrot.pythonPath.",
        "codeparrot.installSource",
      );
    }
    if (base === undefined) {
      return this.cannot(res.baseError ?? "no Python found", "codeparrot.pythonPath");
    }
    const version = await pythonVersion(base.path, this.d.host);
    if (version === undefined || !supportedVersion(version)) {
      return this.cannot(
        `the server needs Python 3.11 or newer; ${base.path} is ${version ?? "not a working Python"}. Choose another interpreter.`,
        "codeparrot.pythonPath",
      );
    }
    const plan: InstallPlan = { ...target, basePython: base.path, fast: false };
    const what = target.source.kind === "bundled" ? `codeparrot-lsp ${target.source.version} (bundled with the extension)` : target.requirement;
    const from = process.platform === "linux" ? `PyTorch's CPU index (${CPU_TORCH_INDEX}) and PyPI` : "PyPI";
    this.d.setStatus({ kind: "setup", message: "the completion server is not set up" });
    const pick = await vscode.window.showInformationMessage(
      `CodeParrot: set up the completion server? It creates a private Python environment with ${base.path} ` +
        `(Python ${version}) and installs ${what}, CPU PyTorch ${target.torch} and their dependencies, ` +
        `downloaded from ${from}: about 260 MB to download, 1.3 GB on disk, a few minutes.`,
      { modal },
      SET_UP,
      OTHER_OPTIONS,
    );
    if (pick === SET_UP) {
      const record = await this.install(plan, "Setting up the CodeParrot server");
      return record ? { kind: "installed", record } : { kind: "declined" };
    }
    if (pick === OTHER_OPTIONS) return this.otherOptions(plan, base);
    this.d.output.appendLine("[setup] not set up now; run CodeParrot: Set Up Server when you want it");
    return { kind: "declined" };
  }

  private async cannot(reason: string, setting: string): Promise<OfferOutcome> {
    this.d.setStatus({ kind: "error", message: `the completion server cannot be set up: ${reason}` });
    const pick = await vscode.window.showErrorMessage(`CodeParrot: the completion server cannot be set up: ${reason}`, "Open Settings");
    if (pick) void vscode.commands.executeCommand("workbench.action.openSettings", setting);
    return { kind: "declined" };
  }

  private async otherOptions(plan: InstallPlan, base: Interpreter): Promise<OfferOutcome> {
    const items = [
      { label: `Install into ${base.path} itself`, detail: "pip installs torch and codeparrot-lsp into that interpreter", id: "own" },
      { label: "Use another interpreter…", detail: "codeparrot.pythonPath: one that has codeparrot-lsp installed", id: "choose" },
      { label: "Copy the commands to run by hand", detail: `a virtual environment in ${MANUAL_ENV}`, id: "copy" },
    ];
    const pick = await vscode.window.showQuickPick(items, { title: "CodeParrot: the completion server" });
    if (pick?.id === "own") return (await this.installInto(plan, base.path)) ? { kind: "retry" } : { kind: "declined" };
    if (pick?.id === "choose") void vscode.commands.executeCommand("workbench.action.openSettings", "codeparrot.pythonPath");
    if (pick?.id === "copy") await this.copyManual(plan);
    return { kind: "declined" };
  }

  private async copyManual(plan: InstallPlan): Promise<void> {
    const lines = manualCommands(plan, MANUAL_ENV);
    await vscode.env.clipboard.writeText(lines.join("\n") + "\n");
    this.d.output.appendLine(`[setup] to install by hand, run:\n${lines.join("\n")}`);
    this.d.output.appendLine(`[setup] then set codeparrot.pythonPath to ${envPython(MANUAL_ENV)}`);
  }

  /** `statusBar`: show the steps in the status bar item (not while a working server runs). */
  private hooks(
    progress: vscode.Progress<{ message?: string; increment?: number }>,
    token: vscode.CancellationToken,
    statusBar = true,
  ): InstallHooks {
    return {
      runner: this.d.runner,
      token,
      onStep: (title, index, count) => {
        const increment = index === 0 ? 0 : 100 / count;
        progress.report({ message: `${title}…`, increment });
        if (statusBar) this.d.setStatus({ kind: "installing", message: title });
        this.d.output.appendLine(`[setup] ${title} (step ${index + 1} of ${count})`);
      },
      onOutput: (text) => {
        this.d.output.append(text);
        const last = text.trim().split(/\r?\n/).pop()?.trim();
        if (last) progress.report({ message: last.slice(0, 100) });
      },
      check: (python) => checkServerInstalled(python, this.d.host),
    };
  }

  /** A new private environment for `plan`; undefined (and the reason shown) when it did not complete. */
  async install(plan: InstallPlan, title: string, statusBar = true): Promise<EnvRecord | undefined> {
    const started = Date.now();
    try {
      const record = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `CodeParrot: ${title}`, cancellable: true },
        (progress, token) => installEnvironment(this.d.store, plan, this.hooks(progress, token, statusBar)),
      );
      this.d.output.appendLine(`[setup] ${describeSource(record.source)} installed in ${record.python} (${Math.round((Date.now() - started) / 1000)} s)`);
      return record;
    } catch (err) {
      if (statusBar) {
        this.d.setStatus(
          err instanceof InstallCancelledError
            ? { kind: "setup", message: "the setup was cancelled" }
            : { kind: "error", message: "the completion server could not be set up (see the logs)" },
        );
      }
      await this.failed(err, plan);
      return undefined;
    }
  }

  private async installInto(plan: InstallPlan, python: string): Promise<boolean> {
    const steps = [torchArgs(plan.torch), serverInstallArgs(plan, false)];
    try {
      if (plan.bundle) await verifyWheel(plan.bundle);
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `CodeParrot: installing into ${python}`, cancellable: true },
        async (progress, token) => {
          const hooks = this.hooks(progress, token);
          for (const [i, args] of steps.entries()) {
            hooks.onStep(i === 0 ? "Installing CPU PyTorch" : "Installing codeparrot-lsp", i, steps.length);
            const res = await this.d.runner.run(python, args, hooks.onOutput, token);
            if (res.cancelled) throw new InstallCancelledError();
            if (res.code !== 0) throw new InstallFailedError(`installing into ${python}`, res.tail.trim().split(/\r?\n/).pop() ?? "");
          }
          return true;
        },
      );
    } catch (err) {
      await this.failed(err, plan);
      return false;
    }
  }

  private async failed(err: unknown, plan: InstallPlan): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const previous = await this.d.store.current();
    const kept = previous ? ` The server in use stays ${describeSource(previous.source)}.` : "";
    this.d.output.appendLine(`[setup] ${message}`);
    const byHand = manualCommands(plan, MANUAL_ENV);
    this.d.output.appendLine(`[setup] to install by hand, run:\n${byHand.join("\n")}\nthen set codeparrot.pythonPath to ${envPython(MANUAL_ENV)}`);
    if (err instanceof InstallCancelledError) {
      void vscode.window.showInformationMessage(`CodeParrot: ${message}${kept} Run CodeParrot: Set Up Server to start again.`);
      return;
    }
    const text = `CodeParrot: ${message}${kept} The commands to run by hand are in the logs.`;
    const pick = err instanceof InstallBusyError
      ? await vscode.window.showWarningMessage(text, COPY_COMMANDS, SHOW_LOGS)
      : await vscode.window.showErrorMessage(text, COPY_COMMANDS, SHOW_LOGS);
    if (pick === COPY_COMMANDS) await vscode.env.clipboard.writeText(byHand.join("\n") + "\n");
    if (pick === SHOW_LOGS) this.d.output.show(true);
  }

  /** Replaces the private environment after an extension update; the running server is left alone until it succeeds. */
  async upgrade(record: EnvRecord, target: InstallTarget): Promise<EnvRecord | undefined> {
    const fast = record.fast && target.bundle?.extras.includes(FAST_EXTRA) === true;
    const plan: InstallPlan = { ...target, basePython: record.basePython, fast };
    void vscode.window.showInformationMessage(
      `CodeParrot: updating the completion server from ${describeSource(record.source)} to ${describeSource(target.source)}; ` +
        "completions go on meanwhile.",
    );
    return this.install(plan, "Updating the completion server", false);
  }

  /**
   * The llama.cpp engine, offered after a setup with its compile time stated (unless the user said
   * never), or when asked for with CodeParrot: Set Up Server.
   */
  async offerFast(record: EnvRecord, target: InstallTarget | undefined, asked: boolean): Promise<EnvRecord | undefined> {
    if (record.fast || target === undefined || target.bundle?.extras.includes(FAST_EXTRA) !== true) return undefined;
    if (!asked && this.d.memento.get<boolean>(FAST_DECLINED_KEY) === true) return undefined;
    const pick = await vscode.window.showInformationMessage(
      "CodeParrot: completions are set up. Also build the faster llama.cpp engine into the server's environment? " +
        "It compiles llama.cpp from source: about 15 minutes on 2 CPU cores, longer on a slower machine, " +
        "and needs a C++ compiler and CMake. Completions keep working meanwhile.",
      BUILD_FAST,
      NOT_NOW,
      NEVER,
    );
    if (pick === NEVER) await this.d.memento.update(FAST_DECLINED_KEY, true);
    if (pick !== BUILD_FAST) return undefined;
    const plan: InstallPlan = { ...target, basePython: record.basePython, fast: true };
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: "CodeParrot: building the llama.cpp engine", cancellable: true },
        (progress, token) => installFastExtra(this.d.store, record, target, this.hooks(progress, token, false)),
      );
    } catch (err) {
      await this.failed(err, plan);
      return undefined;
    }
  }
}
