// Entry point: activation, commands, status bar, and the server's life cycle.

import * as path from "node:path";
import * as vscode from "vscode";
import { DidChangeConfigurationNotification, type LanguageClient, State } from "vscode-languageclient/node";

import { ACCEPTED_METHOD, type AcceptArgument, originLocation, originView } from "./acceptance";
import { type Bundle, readBundle } from "./bundle";
import { createClient } from "./client";
import { nodePythonHost, type PythonExtensionApi, type PythonHost } from "./python";
import { type Origin, type Resolution, resolveServer } from "./resolve";
import {
  classifyChange,
  didChangeConfigurationParams,
  readClientSettings,
  readServerSettings,
  SECTION,
} from "./settings";
import { formatStats, STATS_METHOD } from "./stats";
import { ServerSetup } from "./setupUi";
import { type ServerState, stateAfterProgress, statusView } from "./status";
import { processRunner } from "./steps";
import { describeSource, type EnvRecord, EnvStore, FAST_EXTRA, type InstallTarget, installTarget } from "./venv";

const PYTHON_EXTENSION_ID = "ms-python.python";

const ORIGIN_LABEL: Record<Origin, string> = {
  setting: "setting",
  managed: "the extension's private environment",
  "python-extension": "python-extension",
  path: "path",
};

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
  /** Where the ghost text on screen was copied from, while it is on screen. */
  private readonly origin = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 99);
  private readonly host: PythonHost = nodePythonHost(pythonExtensionApi);
  private readonly store: EnvStore;
  private readonly setup: ServerSetup;
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private state: ServerState = { kind: "starting" };
  /** The private environment the running server uses, and what the setup would install now. */
  private managed: { record: EnvRecord; target: InstallTarget | undefined } | undefined;
  /** The setup offer on screen, if any. */
  private offering: Promise<void> | undefined;
  /** Work that waits for the server's start: an upgrade (even if it failed) or the llama.cpp offer. */
  private afterStart: { run: () => Promise<void>; evenIfDown: boolean } | undefined;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.store = new EnvStore(path.join(context.globalStorageUri.fsPath, "server"));
    this.setup = new ServerSetup({
      output: this.output,
      store: this.store,
      host: this.host,
      runner: processRunner(),
      memento: context.globalState,
      setStatus: (state) => { this.setState(state); },
    });
    const reg = (id: string, fn: () => unknown): void => {
      context.subscriptions.push(vscode.commands.registerCommand(id, fn));
    };
    reg("codeparrot.enable", () => this.setEnabled(true));
    reg("codeparrot.disable", () => this.setEnabled(false));
    reg("codeparrot.toggle", () => this.setEnabled(!this.enabled()));
    reg("codeparrot.restartServer", () => this.restart());
    reg("codeparrot.showLogs", () => { this.output.show(true); });
    reg("codeparrot.showStats", () => this.showStats());
    reg("codeparrot.setupServer", () => this.setupCommand());
    context.subscriptions.push(
      this.output,
      this.item,
      this.origin,
      vscode.workspace.onDidChangeConfiguration((e) => { this.onConfigurationChanged(e); }),
      // The ghost text goes away when the cursor moves or the editor changes; a new one that
      // follows typing is announced again by the next answer.
      vscode.window.onDidChangeTextEditorSelection(() => { this.origin.hide(); }),
      vscode.window.onDidChangeActiveTextEditor(() => { this.origin.hide(); }),
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
    this.managed = undefined;
    const python = await this.findServer();
    if (python === undefined) return;

    const { settings, problems } = readServerSettings(this.config());
    for (const p of problems) this.output.appendLine(`[settings] ${p}`);
    // An upgrade runs whether or not the old server starts (the new one may well fix it); the
    // llama.cpp offer only follows a server that works.
    const after = this.afterStart;
    this.afterStart = undefined;
    try {
      const client = createClient({
        python,
        settings,
        outputChannel: this.output,
        onProgress: (value) => { this.setState(stateAfterProgress(value, this.enabled())); },
        acceptance: {
          shown: (arg) => { this.showOrigin(arg); },
          accepted: (arg) => { this.accepted(client, arg); },
        },
      });
      client.onDidChangeState((e) => {
        if (e.newState === State.Stopped && this.client === client) {
          this.setState({ kind: "error", message: "the completion server stopped" });
        }
      });
      this.client = client;
      await client.start();
      this.setState(this.readyState());
      if (after) void after.run();
    } catch (err) {
      this.setState({ kind: "error", message: `server failed to start: ${errorText(err)}` });
      if (after?.evenIfDown) void after.run();
    }
  }

  private async bundle(): Promise<Bundle | undefined> {
    try {
      return await readBundle(this.context.extensionPath);
    } catch (err) {
      this.output.appendLine(`[setup] ${errorText(err)}`);
      return undefined;
    }
  }

  /** The interpreter to start the server with, after the setup offer when there is none; undefined: not now. */
  private async findServer(): Promise<string | undefined> {
    const { pythonPath, installSource } = readClientSettings(this.config());
    const bundle = await this.bundle();
    let res: Resolution;
    try {
      res = await resolveServer({ pythonPath, installSource, bundle, store: this.store, host: this.host });
    } catch (err) {
      // Only a codeparrot.pythonPath that is not an executable gets here: the user asked for it.
      this.setState({ kind: "error", message: errorText(err) });
      void vscode.window.showErrorMessage(`CodeParrot: ${errorText(err)}`, "Open Settings").then((pick) => {
        if (pick) void vscode.commands.executeCommand("workbench.action.openSettings", "codeparrot.pythonPath");
      });
      return undefined;
    }
    if (res.kind === "setup") {
      // The offer does not hold up the start: a notification can wait unanswered for long (in the
      // notification centre), and restarts and setting changes must not queue behind it.
      void this.offerSetup(res, false);
      return undefined;
    }
    this.output.appendLine(`Python: ${res.python} (from ${ORIGIN_LABEL[res.origin]})`);
    this.output.appendLine(`codeparrot-lsp ${res.version}`);
    if (res.record) {
      const { record, upgrade } = res;
      this.managed = { record, target: upgrade ?? installTarget(installSource, bundle) };
      if (upgrade) this.afterStart = { run: () => this.upgradeThenRestart(record, upgrade), evenIfDown: true };
      void this.store.sweep().then((gone) => {
        for (const g of gone) this.output.appendLine(`[setup] removed the old environment ${g}`);
      });
    }
    return res.python;
  }

  /** One offer at a time; after an install, the server restarts from the new environment. */
  private offerSetup(res: Extract<Resolution, { kind: "setup" }>, modal: boolean): Promise<void> {
    if (this.offering && !modal) return this.offering;
    const offering = (async () => {
      const outcome = await this.setup.offer(res, modal);
      if (outcome.kind === "declined") return;
      if (outcome.kind === "installed") {
        const { record } = outcome;
        this.afterStart = { run: () => this.offerFast(record, res.target, false), evenIfDown: false };
      }
      await this.restart();
    })().finally(() => {
      if (this.offering === offering) this.offering = undefined;
    });
    this.offering = offering;
    return offering;
  }

  private async upgradeThenRestart(record: EnvRecord, target: InstallTarget): Promise<void> {
    const next = await this.setup.upgrade(record, target);
    if (next === undefined) return;
    await this.restart();
    void vscode.window.showInformationMessage(`CodeParrot: the completion server is now ${describeSource(next.source)}.`);
  }

  private async offerFast(record: EnvRecord, target: InstallTarget | undefined, asked: boolean): Promise<void> {
    const next = await this.setup.offerFast(record, target, asked);
    if (next === undefined) return;
    await this.restart();
    void vscode.window.showInformationMessage("CodeParrot: the llama.cpp engine is installed; the server was restarted.");
  }

  /** CodeParrot: Set Up Server: the offer again when there is no server, else the llama.cpp engine. */
  private async setupCommand(): Promise<void> {
    await this.starting;
    if (this.client?.isRunning() !== true) {
      const { pythonPath, installSource } = readClientSettings(this.config());
      const res = await resolveServer({ pythonPath, installSource, bundle: await this.bundle(), store: this.store, host: this.host })
        .catch((err: unknown) => { this.output.appendLine(`[setup] ${errorText(err)}`); return undefined; });
      if (res?.kind === "setup") await this.offerSetup(res, true);
      else await this.restart();
      return;
    }
    if (this.managed) {
      const { record, target } = this.managed;
      if (record.fast || target?.bundle?.extras.includes(FAST_EXTRA) !== true) {
        void vscode.window.showInformationMessage(`CodeParrot: the completion server is set up: ${describeSource(record.source)} in ${record.python}.`);
        return;
      }
      await this.offerFast(record, target, true);
      return;
    }
    void vscode.window.showInformationMessage(
      "CodeParrot: the completion server runs from an interpreter of your own (see CodeParrot: Show Logs); " +
        "clear codeparrot.pythonPath to use a private environment instead.",
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

  private showOrigin(arg: AcceptArgument | undefined): void {
    const view = originView(arg);
    if (view === undefined) {
      this.origin.hide();
      return;
    }
    this.origin.text = view.text;
    this.origin.tooltip = `${view.tooltip} — click to open it`;
    this.origin.command = this.openOrigin(arg?.from);
    this.origin.show();
  }

  /** The command that opens a copy's origin at its line (a path relative to the first folder). */
  private openOrigin(from: string | undefined): vscode.Command | undefined {
    const where = from === undefined ? undefined : originLocation(from);
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (where === undefined) return undefined;
    let uri: vscode.Uri;
    if (path.isAbsolute(where.path)) uri = vscode.Uri.file(where.path);
    else if (folder !== undefined) uri = vscode.Uri.joinPath(folder.uri, where.path);
    else return undefined;
    const at = new vscode.Range(where.line - 1, 0, where.line - 1, 0);
    return { title: "Open the copied code", command: "vscode.open", arguments: [uri, { selection: at }] };
  }

  /** An accepted item: counted by the server (in its memory; see Show Stats), nowhere else. */
  private accepted(client: LanguageClient, arg: AcceptArgument): void {
    this.origin.hide();
    if (!client.isRunning()) return;
    client.sendNotification(ACCEPTED_METHOD, { id: arg.id }).catch((err: unknown) => {
      this.output.appendLine(`[accepted] ${errorText(err)}`);
    });
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
