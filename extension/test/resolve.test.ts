// Which interpreter runs the server, and when the setup is offered instead. Interpreters are
// stand-in scripts that answer the extension's import check the way a Python with or without
// codeparrot-lsp does (through the real process runner).

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { type Bundle, readBundle } from "../src/bundle";
import { type PythonHost, runProcess } from "../src/python";
import { resolveServer } from "../src/resolve";
import { type EnvRecord, EnvStore } from "../src/venv";
import { script, writeBundle } from "./wheels";

let dir: string;
let withServer: string;
let withoutServer: string;
let bundle: Bundle;

const MISSING = "ModuleNotFoundError: No module named 'server'";

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "codeparrot-resolve-"));
  withServer = script(path.join(dir, "python-with-server"), 'echo "0.1.0"');
  withoutServer = script(path.join(dir, "python3"), `echo "${MISSING}" >&2; exit 1`);
  writeBundle(path.join(dir, "ext"), "0.2.0");
  const read = await readBundle(path.join(dir, "ext"));
  assert.ok(read);
  bundle = read;
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A host whose PATH has `onPath` as python3; it records every interpreter it runs. */
function host(onPath: string | undefined): PythonHost & { ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    pythonExtensionInterpreter: () => Promise.resolve(undefined),
    which: (cmd) => Promise.resolve(cmd === "python3" ? onPath : undefined),
    run: (cmd, args, timeout) => {
      ran.push(cmd);
      return runProcess(cmd, args, timeout);
    },
  };
}

async function storeWith(name: string, rec: EnvRecord | undefined): Promise<EnvStore> {
  const store = new EnvStore(path.join(dir, name));
  mkdirSync(store.root, { recursive: true });
  if (rec) await store.commit(rec);
  return store;
}

function record(python: string, sha256: string): EnvRecord {
  return {
    env: "env-a",
    python,
    source: { kind: "bundled", version: "0.1.0", sha256 },
    torch: "2.13.0",
    fast: false,
    basePython: withoutServer,
    installedAt: "2026-12-01T00:00:00.000Z",
  };
}

describe("resolveServer", () => {
  it("uses a codeparrot.pythonPath that has the server, without any offer or other lookup", async () => {
    const store = await storeWith("setting", record(withoutServer, bundle.sha256));
    const h = host(withoutServer);
    const res = await resolveServer({ pythonPath: withServer, installSource: "", bundle, store, host: h });
    assert.deepEqual(res, { kind: "use", python: withServer, origin: "setting", version: "0.1.0" });
    assert.deepEqual(h.ran, [withServer]);
  });

  it("uses the private environment when it runs the bundled server", async () => {
    const rec = record(withServer, bundle.sha256);
    const store = await storeWith("managed", rec);
    const res = await resolveServer({ pythonPath: "", installSource: "", bundle, store, host: host(withoutServer) });
    assert.deepEqual(res, { kind: "use", python: withServer, origin: "managed", version: "0.1.0", record: rec });
  });

  it("upgrades the private environment when the extension bundles another wheel", async () => {
    const rec = record(withServer, "f".repeat(64));
    const store = await storeWith("upgrade", rec);
    const res = await resolveServer({ pythonPath: "", installSource: "", bundle, store, host: host(withoutServer) });
    assert.equal(res.kind, "use");
    assert.equal(res.upgrade?.requirement, bundle.wheelPath);
    assert.deepEqual(res.upgrade.source, { kind: "bundled", version: "0.2.0", sha256: bundle.sha256 });
  });

  it("reinstalls when the torch pin changed", async () => {
    const store = await storeWith("torch", { ...record(withServer, bundle.sha256), torch: "2.12.0" });
    const res = await resolveServer({ pythonPath: "", installSource: "", bundle, store, host: host(withoutServer) });
    assert.equal(res.kind === "use" && res.upgrade?.torch, "2.13.0");
  });

  it("reinstalls when codeparrot.installSource names something else than what is installed", async () => {
    const store = await storeWith("source", record(withServer, bundle.sha256));
    const res = await resolveServer({ pythonPath: "", installSource: "/src/checkout", bundle, store, host: host(withoutServer) });
    assert.deepEqual(res.kind === "use" && res.upgrade?.source, { kind: "installSource", spec: "/src/checkout" });
  });

  it("uses python3 on PATH when it has the server and there is no private environment", async () => {
    const store = await storeWith("path", undefined);
    const res = await resolveServer({ pythonPath: "", installSource: "", bundle, store, host: host(withServer) });
    assert.deepEqual(res, { kind: "use", python: withServer, origin: "path", version: "0.1.0" });
  });

  it("offers the setup with the bundled wheel when no interpreter has the server", async () => {
    const store = await storeWith("offer", undefined);
    const res = await resolveServer({ pythonPath: "", installSource: "", bundle, store, host: host(withoutServer) });
    assert.equal(res.kind, "setup");
    assert.deepEqual(res.base, { path: withoutServer, source: "path" });
    assert.equal(res.target?.requirement, bundle.wheelPath);
    assert.deepEqual(res.notes, [`${withoutServer}: ${MISSING}`]);
  });

  it("offers the setup with codeparrot.pythonPath as its base, and replaces a broken private environment", async () => {
    const broken = record(path.join(dir, "gone", "bin", "python"), bundle.sha256);
    const store = await storeWith("broken", broken);
    const res = await resolveServer({ pythonPath: withoutServer, installSource: "", bundle, store, host: host(undefined) });
    assert.equal(res.kind, "setup");
    assert.deepEqual(res.base, { path: withoutServer, source: "setting" });
    assert.deepEqual(res.broken, broken);
    assert.match(res.notes.join("\n"), /its Python is gone/);
  });

  it("has nothing to install in a build without a bundled server, unless installSource says what", async () => {
    const store = await storeWith("nobundle", undefined);
    const none = await resolveServer({ pythonPath: "", installSource: "", bundle: undefined, store, host: host(withoutServer) });
    assert.equal(none.kind === "setup" && none.target, undefined);
    const custom = await resolveServer({ pythonPath: "", installSource: "/src/checkout", bundle: undefined, store, host: host(withoutServer) });
    assert.equal(custom.kind === "setup" && custom.target?.requirement, "/src/checkout");
  });
});
