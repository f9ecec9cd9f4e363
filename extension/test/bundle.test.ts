// The manifest of the bundled server wheel and its sha256 check.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { BundleError, readBundle, sha256File, TamperedWheelError, verifyWheel } from "../src/bundle";
import { writeBundle } from "./wheels";

let dir: string;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), "codeparrot-bundle-"));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("readBundle", () => {
  it("reads the manifest and resolves the wheel next to it", async () => {
    const written = writeBundle(path.join(dir, "ok"), "0.3.0");
    const read = await readBundle(path.join(dir, "ok"));
    assert.ok(read);
    assert.deepEqual(read, written);
    assert.equal(read.wheelPath, path.join(dir, "ok", "out", "server", "codeparrot_lsp-0.3.0-py3-none-any.whl"));
  });

  it("says there is no bundle when the build has no out/server", async () => {
    assert.equal(await readBundle(path.join(dir, "none")), undefined);
  });

  it("rejects a manifest that is not one, or that points outside its folder", async () => {
    const root = path.join(dir, "bad");
    mkdirSync(path.join(root, "out", "server"), { recursive: true });
    const file = path.join(root, "out", "server", "manifest.json");
    writeFileSync(file, "{not json");
    await assert.rejects(readBundle(root), BundleError);
    const good = JSON.parse(readFileSync(path.join(dir, "ok", "out", "server", "manifest.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...good, wheel: "../../evil.whl" }));
    await assert.rejects(readBundle(root), /is not a server manifest/);
    writeFileSync(file, JSON.stringify({ ...good, sha256: "abc" }));
    await assert.rejects(readBundle(root), /is not a server manifest/);
  });
});

describe("verifyWheel", () => {
  it("accepts the wheel the manifest names", async () => {
    const b = writeBundle(path.join(dir, "verify"), "0.1.0");
    assert.equal(await sha256File(b.wheelPath), createHash("sha256").update(readFileSync(b.wheelPath)).digest("hex"));
    await verifyWheel(b);
  });

  it("refuses a changed wheel with a message that says what to do", async () => {
    const b = writeBundle(path.join(dir, "changed"), "0.1.0");
    writeFileSync(b.wheelPath, Buffer.concat([readFileSync(b.wheelPath), Buffer.from("x")]));
    await assert.rejects(verifyWheel(b), (err: unknown) => {
      assert.ok(err instanceof TamperedWheelError);
      assert.match(err.message, /changed or damaged after packaging/);
      assert.match(err.message, /Reinstall the extension/);
      return true;
    });
  });

  it("says so when the wheel is missing", async () => {
    const b = writeBundle(path.join(dir, "missing"), "0.1.0");
    rmSync(b.wheelPath);
    await assert.rejects(verifyWheel(b), /cannot be read/);
  });
});
