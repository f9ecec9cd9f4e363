// Entry point: activation, commands, status bar, and the server's life cycle.

import { spawn } from "node:child_process";
import * as vscode from "vscode";
import { DidChangeConfigurationNotification, type LanguageClient, State } from "vscode-languageclient/node";

import { createClient } from "./client";
import {
  checkServerInstalled,
  findInterpreter,
  installArgs,
  installCommandLine,
  type Interpreter,
  nodePythonHost,
  type PythonExtensionApi,
  type PythonHost,
} from "./python";
import {
  classifyChange,
  didChangeConfigurationParams,
  readClientSettings,
  readServerSettings,
  SECTION,
} from "./settings";
import { formatStats, STATS_METHOD } from "./stats";
import { type ServerState, stateAfterProgress, statusView } from "./status";

const PYTHON_EXTENSION_ID = "ms-python.python";

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  controller = new Controller(context);
  await controller.start();
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}

async function pythonExtensionApi(): Promise<PythonExtensionApi | undefined> {
  const ext = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  if (ext === undefined) return undefined;
  return ext.isActive ? ext.exports : await ext.activate();
}

class Controller {
  private readonly output = vscode.window.createOutputChannel("CodeParrot", { log: true });
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  private readonly host: PythonHost = nodePythonHost(pythonExtensionApi);
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private state: ServerState = { kind: "starting" };

  constructor(context: vscode.ExtensionContext) {
    const reg = (id: string, fn: () => unknown): void => {
      context.subscriptions.push(vscode.commands.registerCommand(id, fn));
    };
    reg("codeparrot.enable", () => this.setEnabled(true));
    reg("codeparrot.disable", () => this.setEnabled(false));
    reg("codeparrot.toggle", () => this.setEnabled(!this.enabled()));
    reg("codeparrot.restartServer", () => this.restart());
    reg("codeparrot.showLogs", () => { this.output.show(true); });
    reg("codeparrot.showStats", () => this.showStats());
    context.subscriptions.push(
      this.output,
      this.item,
      vscode.workspace.onDidChangeConfiguration((e) => { this.onConfigurationChanged(e); }),
    );
    this.item.show();
  }

  private config(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  private enabled(): boolean {
    return this.config().get<boolean>("enable") !== false;
  }

  private setState(state: ServerState): void {
    this.state = state;
    const view = statusView(state);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.command;
    this.item.backgroundColor =
      view.background === "none" ? undefined : new vscode.ThemeColor(`statusBarItem.${view.background}Background`);
    if (state.kind === "error") this.output.appendLine(`[error] ${state.message}`);
  }

  private readyState(): ServerState {
    return this.enabled() ? { kind: "ready" } : { kind: "disabled" };
  }

  start(): Promise<void> {
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.setState({ kind: "starting" });
    let python: Interpreter;
    try {
      python = await findInterpreter(readClientSettings(this.config()).pythonPath, this.host);
    } catch (err) {
      this.setState({ kind: "error", message: errorText(err) });
      void vscode.window.showErrorMessage(`CodeParrot: ${errorText(err)}`, "Open Settings").then((pick) => {
        if (pick) void vscode.commands.executeCommand("workbench.action.openSettings", "codeparrot.pythonPath");
      });
      return;
    }
    this.output.appendLine(`Python: ${python.path} (from ${python.source})`);
    if (!(await this.ensureInstalled(python.path))) return;

    const { settings, problems } = readServerSettings(this.config());
    for (const p of problems) this.output.appendLine(`[settings] ${p}`);
    const client = createClient({
      python: python.path,
      settings,
      outputChannel: this.output,
      onProgress: (value) => { this.setState(stateAfterProgress(value, this.enabled())); },
    });
    client.onDidChangeState((e) => {
      if (e.newState === State.Stopped && this.client === client) {
        this.setState({ kind: "error", message: "the completion server stopped" });
      }
    });
    this.client = client;
    try {
      await client.start();
      this.setState(this.readyState());
    } catch (err) {
      this.setState({ kind: "error", message: `server failed to start: ${errorText(err)}` });
    }
  }

  /** True when codeparrot-lsp is importable, possibly after installing it with the user's consent. */
  private async ensureInstalled(python: string): Promise<boolean> {
    const check = await checkServerInstalled(python, this.host);
    if (check.ok) {
      this.output.appendLine(`codeparrot-lsp ${check.version}`);
      return true;
    }
    const source = readClientSettings(this.config()).installSource;
    const commandLine = installCommandLine(python, source);
    this.setState({ kind: "error", message: `codeparrot-lsp is not installed for ${python}` });
    this.output.appendLine(`codeparrot-lsp not importable by ${python}: ${check.detail}`);
    this.output.appendLine(`To install it, run: ${commandLine}`);
    const pick = await vscode.window.showWarningMessage(
      `CodeParrot: the completion server (codeparrot-lsp) is not installed for ${python}. ` +
        `Install it now? This runs: ${commandLine}`,
      "Install",
      "Copy Command",
      "Choose Interpreter",
    );
    if (pick === "Copy Command") {
      await vscode.env.clipboard.writeText(commandLine);
      return false;
    }
    if (pick === "Choose Interpreter") {
      void vscode.commands.executeCommand("workbench.action.openSettings", "codeparrot.pythonPath");
      return false;
    }
    if (pick !== "Install") return false;
    const code = await this.runPipInstall(python, installArgs(source));
    const again = await checkServerInstalled(python, this.host);
    if (code === 0 && again.ok) {
      this.output.appendLine(`Installed codeparrot-lsp ${again.version}`);
      return true;
    }
    this.output.show(true);
    void vscode.window.showErrorMessage(
      `CodeParrot: installing codeparrot-lsp failed (see the CodeParrot output). Run it yourself: ${commandLine}`,
    );
    return false;
  }

  private runPipInstall(python: string, args: string[]): Thenable<number | null> {
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "Installing codeparrot-lsp", cancellable: true },
      (progress, token) =>
        new Promise<number | null>((resolve) => {
          this.output.appendLine(`$ ${python} ${args.join(" ")}`);
          const proc = spawn(python, args, { env: { ...process.env, PIP_PROGRESS_BAR: "off" } });
          token.onCancellationRequested(() => proc.kill());
          const onData = (chunk: Buffer): void => {
            const text = chunk.toString();
            this.output.append(text);
            const last = text.trim().split(/\r?\n/).pop();
            if (last) progress.report({ message: last.slice(0, 120) });
          };
          proc.stdout.on("data", onData);
          proc.stderr.on("data", onData);
          proc.on("error", (err) => {
            this.output.appendLine(`[error] ${err.message}`);
            resolve(null);
          });
          proc.on("close", (code) => { resolve(code); });
        }),
    );
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client?.isRunning()) {
      await client.stop().catch((err: unknown) => { this.output.appendLine(`[stop] ${errorText(err)}`); });
    }
  }

  async restart(): Promise<void> {
    await this.starting;
    await this.stop();
    await this.start();
  }

  private async setEnabled(on: boolean): Promise<void> {
    // Written to user settings; onConfigurationChanged tells the server and updates the status.
    await this.config().update("enable", on, vscode.ConfigurationTarget.Global);
  }

  private onConfigurationChanged(e: vscode.ConfigurationChangeEvent): void {
    const kind = classifyChange(e);
    if (kind === "restart") {
      void this.restart();
    } else if (kind === "notify") {
      const { settings, problems } = readServerSettings(this.config());
      for (const p of problems) this.output.appendLine(`[settings] ${p}`);
      if (this.client?.isRunning()) {
        void this.client.sendNotification(
          DidChangeConfigurationNotification.type,
          didChangeConfigurationParams(settings),
        );
        if (this.state.kind === "ready" || this.state.kind === "disabled") this.setState(this.readyState());
      }
    }
  }

  private async showStats(): Promise<void> {
    if (!this.client?.isRunning()) {
      void vscode.window.showInformationMessage("CodeParrot: the completion server is not running.");
      return;
    }
    try {
      const stats = await this.client.sendRequest(STATS_METHOD, {});
      await vscode.window.showQuickPick(formatStats(stats), { title: "CodeParrot statistics" });
    } catch (err) {
      void vscode.window.showErrorMessage(`CodeParrot: stats request failed: ${errorText(err)}`);
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
