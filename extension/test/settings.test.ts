import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import {
  CLIENT_KEYS,
  classifyChange,
  type ConfigurationLike,
  didChangeConfigurationParams,
  initializationOptions,
  readClientSettings,
  readServerSettings,
  SERVER_KEYS,
} from "../src/settings";

/** A fake vscode.WorkspaceConfiguration for the `codeparrot` section. */
function config(values: Record<string, unknown>): ConfigurationLike {
  return { get: (key: string) => values[key] };
}

interface PropertySchema {
  type: string;
  default: unknown;
  enum?: string[];
}

// Tests run from out/test/test/; the manifest is at the repo root.
const manifest = JSON.parse(readFileSync(path.join(__dirname, "..", "..", "..", "package.json"), "utf8")) as {
  contributes: { configuration: { properties: Record<string, PropertySchema> } };
};
const properties = manifest.contributes.configuration.properties;

describe("package.json contributes.configuration", () => {
  it("declares exactly the server keys plus the client keys", () => {
    const declared = Object.keys(properties).map((k) => k.replace(/^codeparrot\./, "")).sort();
    assert.deepEqual(declared, [...SERVER_KEYS, ...CLIENT_KEYS].sort());
  });

  it("has defaults that the settings reader accepts unchanged", () => {
    const defaults: Record<string, unknown> = {};
    for (const key of SERVER_KEYS) defaults[key] = properties[`codeparrot.${key}`].default;
    const { settings, problems } = readServerSettings(config(defaults));
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, defaults);
  });
});

describe("readServerSettings", () => {
  it("passes valid values through with the server's key names", () => {
    const values = {
      model: " /models/js ",
      adapter: "",
      maxNewTokens: 32,
      maxPromptTokens: 256,
      device: "cpu",
      quantize: "int8",
      multiline: "never",
      enable: false,
    };
    const { settings, problems } = readServerSettings(config(values));
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, { ...values, model: "/models/js" });
  });

  it("leaves unset keys out so the server keeps its defaults", () => {
    const { settings, problems } = readServerSettings(config({ maxNewTokens: 8 }));
    assert.deepEqual(settings, { maxNewTokens: 8 });
    assert.deepEqual(problems, []);
  });

  it("drops values of the wrong type and says which", () => {
    const { settings, problems } = readServerSettings(
      config({ maxNewTokens: -3, device: "tpu", enable: "yes", model: 7, quantize: "int8" }),
    );
    assert.deepEqual(settings, { quantize: "int8" });
    assert.equal(problems.length, 4);
    assert.match(problems.join("\n"), /codeparrot\.maxNewTokens: -3 is not a positive integer/);
    assert.match(problems.join("\n"), /codeparrot\.device: "tpu" is not one of auto, cpu, cuda/);
    assert.match(problems.join("\n"), /codeparrot\.enable: "yes" is not true or false/);
    assert.match(problems.join("\n"), /codeparrot\.model: 7 is not a string/);
  });

  it("passes the team-server backend settings through; the key's variable name, never a key", () => {
    const values = {
      backend: "openai",
      backendUrl: " http://127.0.0.1:8080 ",
      backendModel: "codeparrot",
      backendApiKeyEnv: "TEAM_LLM_KEY",
      backendTimeoutMs: 1500,
    };
    const { settings, problems } = readServerSettings(config(values));
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, { ...values, backendUrl: "http://127.0.0.1:8080" });
    const bad = readServerSettings(config({ backend: "vllm", backendTimeoutMs: "2s" }));
    assert.deepEqual(bad.settings, {});
    assert.match(bad.problems.join("\n"), /codeparrot\.backend: "vllm" is not one of local, openai/);
  });

  it("rejects a fractional token count", () => {
    const { settings, problems } = readServerSettings(config({ maxPromptTokens: 10.5 }));
    assert.deepEqual(settings, {});
    assert.equal(problems.length, 1);
  });
});

describe("messages to the server", () => {
  it("sends the settings flat as initializationOptions and under `codeparrot` on change", () => {
    const s = { maxNewTokens: 16, enable: true };
    assert.deepEqual(initializationOptions(s), { maxNewTokens: 16, enable: true });
    assert.deepEqual(didChangeConfigurationParams(s), { settings: { codeparrot: { maxNewTokens: 16, enable: true } } });
  });
});

describe("classifyChange", () => {
  const event = (changed: string[]) => ({
    affectsConfiguration: (section: string) =>
      changed.some((c) => c === section || c.startsWith(section + ".") || section.startsWith(c + ".")),
  });

  it("restarts for interpreter and trace settings", () => {
    assert.equal(classifyChange(event(["codeparrot.pythonPath"])), "restart");
    assert.equal(classifyChange(event(["codeparrot.trace.server"])), "restart");
  });

  it("notifies the server for its own settings", () => {
    assert.equal(classifyChange(event(["codeparrot.enable"])), "notify");
    assert.equal(classifyChange(event(["codeparrot.model"])), "notify");
  });

  it("ignores other extensions' settings", () => {
    assert.equal(classifyChange(event(["editor.fontSize"])), "none");
  });
});

describe("readClientSettings", () => {
  it("trims strings and ignores non-strings", () => {
    assert.deepEqual(readClientSettings(config({ pythonPath: " /usr/bin/python3 ", installSource: 3 })), {
      pythonPath: "/usr/bin/python3",
      installSource: "",
    });
  });
});
