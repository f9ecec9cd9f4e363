// Mapping between VS Code's `codeparrot.*` configuration and the server's `codeparrot` settings
// section. Pure: the vscode API enters only through the small interfaces below, so this module
// runs (and is unit-tested) in plain Node.

/** The subset of vscode.WorkspaceConfiguration this module reads. */
export interface ConfigurationLike {
  get(section: string): unknown;
}

/** The subset of vscode.ConfigurationChangeEvent this module reads. */
export interface ConfigurationChangeLike {
  affectsConfiguration(section: string): boolean;
}

export const SECTION = "codeparrot";

export type Device = "auto" | "cpu" | "cuda";
export type Quantize = "auto" | "none" | "int8" | "bf16";
export type EngineKind = "auto" | "torch" | "llama";
export type Multiline = "auto" | "never" | "always";
export type OnOff = "on" | "off";
export type Fim = "auto" | "off";
export type BackendKind = "local" | "openai";

/** The server's settings, with the server's own (camelCase) key names. */
export interface ServerSettings {
  model: string;
  adapter: string;
  maxNewTokens: number;
  maxPromptTokens: number;
  device: Device;
  quantize: Quantize;
  engine: EngineKind;
  multiline: Multiline;
  enable: boolean;
  workspaceIndex: OnOff;
  fim: Fim;
  backend: BackendKind;
  backendUrl: string;
  backendModel: string;
  backendApiKeyEnv: string;
  backendTimeoutMs: number;
  backendSnippetTokens: number;
  acceptanceLog: string;
  acceptanceLogText: boolean;
}

/** Keys sent to the server; identical to package.json `codeparrot.<key>` and server/settings.py. */
export const SERVER_KEYS: readonly (keyof ServerSettings)[] = [
  "model",
  "adapter",
  "maxNewTokens",
  "maxPromptTokens",
  "device",
  "quantize",
  "engine",
  "multiline",
  "enable",
  "workspaceIndex",
  "fim",
  "backend",
  "backendUrl",
  "backendModel",
  "backendApiKeyEnv",
  "backendTimeoutMs",
  "backendSnippetTokens",
  "acceptanceLog",
  "acceptanceLogText",
];

/** Extension-only keys: they change how the server process is started, so they need a restart. */
export const CLIENT_KEYS = ["pythonPath", "installSource", "trace.server"] as const;

const ENUMS = {
  device: ["auto", "cpu", "cuda"],
  quantize: ["auto", "none", "int8", "bf16"],
  engine: ["auto", "torch", "llama"],
  multiline: ["auto", "never", "always"],
  workspaceIndex: ["on", "off"],
  fim: ["auto", "off"],
  backend: ["local", "openai"],
} as const;

export interface ReadResult {
  /** Only the keys the user set to a value of the right type; the server keeps its defaults for the rest. */
  settings: Partial<ServerSettings>;
  /** One human-readable line per ignored value, e.g. for the output channel. */
  problems: string[];
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}

/**
 * Read the server settings from a configuration object. Values of the wrong type are dropped
 * here with a problem line rather than sent: the server would reject them anyway, and VS Code's
 * settings UI already validates against the schema, so this only catches hand-edited JSON.
 */
export function readServerSettings(cfg: ConfigurationLike): ReadResult {
  const settings: Partial<ServerSettings> = {};
  const problems: string[] = [];
  const bad = (key: string, value: unknown, want: string): void => {
    problems.push(`${SECTION}.${key}: ${JSON.stringify(value)} is not ${want}; using the server default`);
  };
  for (const key of SERVER_KEYS) {
    const value = cfg.get(key);
    if (value === undefined || value === null) {
      continue;
    }
    switch (key) {
      case "model":
      case "adapter":
      case "backendUrl":
      case "backendModel":
      case "backendApiKeyEnv":
      case "acceptanceLog":
        if (typeof value === "string") settings[key] = value.trim();
        else bad(key, value, "a string");
        break;
      case "maxNewTokens":
      case "maxPromptTokens":
      case "backendTimeoutMs":
        if (isPositiveInt(value)) settings[key] = value;
        else bad(key, value, "a positive integer");
        break;
      case "backendSnippetTokens":
        if (typeof value === "number" && Number.isInteger(value) && value >= 0) settings[key] = value;
        else bad(key, value, "a non-negative integer");
        break;
      case "enable":
      case "acceptanceLogText":
        if (typeof value === "boolean") settings[key] = value;
        else bad(key, value, "true or false");
        break;
      case "device":
      case "quantize":
      case "engine":
      case "multiline":
      case "workspaceIndex":
      case "fim":
      case "backend": {
        const allowed: readonly string[] = ENUMS[key];
        if (typeof value === "string" && allowed.includes(value)) {
          (settings as Record<string, unknown>)[key] = value;
        } else {
          bad(key, value, `one of ${allowed.join(", ")}`);
        }
        break;
      }
    }
  }
  return { settings, problems };
}

/** `initializationOptions` of the initialize request: the settings object itself. */
export function initializationOptions(settings: Partial<ServerSettings>): Record<string, unknown> {
  return { ...settings };
}

/** Params of workspace/didChangeConfiguration: `{settings: {codeparrot: {...}}}`. */
export function didChangeConfigurationParams(settings: Partial<ServerSettings>): {
  settings: Record<string, unknown>;
} {
  return { settings: { [SECTION]: { ...settings } } };
}

export type ChangeKind = "none" | "notify" | "restart";

/** What a configuration change needs: nothing, a didChangeConfiguration, or a server restart. */
export function classifyChange(event: ConfigurationChangeLike): ChangeKind {
  if (CLIENT_KEYS.some((k) => event.affectsConfiguration(`${SECTION}.${k}`))) {
    return "restart";
  }
  if (SERVER_KEYS.some((k) => event.affectsConfiguration(`${SECTION}.${k}`))) {
    return "notify";
  }
  return "none";
}

/** Extension-side settings that decide how the server process is found and started. */
export interface ClientSettings {
  pythonPath: string;
  installSource: string;
}

export function readClientSettings(cfg: ConfigurationLike): ClientSettings {
  const str = (key: string): string => {
    const v = cfg.get(key);
    return typeof v === "string" ? v.trim() : "";
  };
  return { pythonPath: str("pythonPath"), installSource: str("installSource") };
}
