import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { clientMiddleware } from "../src/middleware";
import type { ProgressValue } from "../src/status";

describe("clientMiddleware", () => {
  it("never asks the server for classic completions (ghost text only in VS Code)", () => {
    const mw = clientMiddleware(() => {});
    assert.ok(mw.provideCompletionItem);
    let asked = false;
    const next = (): never => {
      asked = true;
      throw new Error("next() must not be called");
    };
    const got = (mw.provideCompletionItem as (...args: unknown[]) => unknown)({}, {}, {}, {}, next);
    assert.equal(got, undefined);
    assert.equal(asked, false);
  });

  it("reports work-done progress and passes it on", () => {
    const seen: ProgressValue[] = [];
    const passed: unknown[] = [];
    const mw = clientMiddleware((v) => seen.push(v));
    const value = { kind: "report" as const, message: "Loading weights", percentage: 30 };
    assert.ok(mw.handleWorkDoneProgress);
    mw.handleWorkDoneProgress("tok", value, (token, params) => passed.push([token, params]));
    assert.deepEqual(seen, [value]);
    assert.deepEqual(passed, [["tok", value]]);
  });
});
