import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ACCEPT_COMMAND, acceptArgument, originLocation, originView, shownArgument } from "../src/acceptance";
import { type AcceptanceHooks, clientMiddleware } from "../src/middleware";
import { acceptanceLines, formatStats } from "../src/stats";

const copyItem = {
  insertText: "entory, mainWarehouse);",
  command: { title: "", command: ACCEPT_COMMAND, arguments: [{ id: "7", source: "copy", from: "lib/utils.js:5" }] },
};

function recorder(): { hooks: AcceptanceHooks; shown: unknown[]; accepted: unknown[] } {
  const shown: unknown[] = [];
  const accepted: unknown[] = [];
  return { hooks: { shown: (a) => shown.push(a), accepted: (a) => accepted.push(a) }, shown, accepted };
}

describe("accept arguments", () => {
  it("reads the id, source and origin of the first item, in a list or an array", () => {
    const want = { id: "7", source: "copy", from: "lib/utils.js:5" };
    assert.deepEqual(shownArgument({ items: [copyItem] }), want);
    assert.deepEqual(shownArgument([copyItem]), want);
  });

  it("finds nothing in an empty answer, another command, or arguments without an id", () => {
    assert.equal(shownArgument(null), undefined);
    assert.equal(shownArgument({ items: [] }), undefined);
    assert.equal(shownArgument([{ command: { command: "other", arguments: [{ id: "1" }] } }]), undefined);
    assert.equal(acceptArgument([{ id: 7 }]), undefined);
    assert.equal(acceptArgument([]), undefined);
    assert.equal(acceptArgument(undefined), undefined);
  });

  it("shows a copy's origin in the status bar, and nothing for the model's text", () => {
    const view = originView({ id: "7", source: "copy", from: "lib/utils.js:5" });
    assert.ok(view !== undefined);
    assert.equal(view.text, "$(references) lib/utils.js:5");
    assert.match(view.tooltip, /copied from lib\/utils\.js:5/);
    assert.match(originView({ id: "8", source: "analogy", from: "a.js:3" })?.tooltip ?? "", /similar one in a\.js:3/);
    assert.equal(originView({ id: "9", source: "model" }), undefined);
  });
});

describe("originLocation", () => {
  it("splits a path and a 1-based line, colons in the path included", () => {
    assert.deepEqual(originLocation("lib/utils.js:42"), { path: "lib/utils.js", line: 42 });
    assert.deepEqual(originLocation("C:/src/a.js:3"), { path: "C:/src/a.js", line: 3 });
    assert.equal(originLocation("lib/utils.js"), undefined);
    assert.equal(originLocation("a.js:0"), undefined);
  });
});

describe("clientMiddleware and accepts", () => {
  it("passes inline items on and announces the first one's origin", async () => {
    const r = recorder();
    const mw = clientMiddleware(() => {}, r.hooks);
    assert.ok(mw.provideInlineCompletionItems);
    const got: unknown = await (mw.provideInlineCompletionItems as (...a: unknown[]) => Promise<unknown>)(
      {}, {}, {}, {}, () => Promise.resolve({ items: [copyItem] }),
    );
    assert.deepEqual(got, { items: [copyItem] });
    assert.deepEqual(r.shown, [{ id: "7", source: "copy", from: "lib/utils.js:5" }]);
  });

  it("forwards an accept command to the hook without a request, and other commands to the server", async () => {
    const r = recorder();
    const mw = clientMiddleware(() => {}, r.hooks);
    const sent: unknown[] = [];
    const next = (command: string, args: unknown[]): Promise<string> => {
      sent.push([command, args]);
      return Promise.resolve("done");
    };
    const run = mw.executeCommand as (c: string, a: unknown[], n: typeof next) => unknown;
    assert.equal(run(ACCEPT_COMMAND, copyItem.command.arguments, next), undefined);
    assert.deepEqual(r.accepted, [{ id: "7", source: "copy", from: "lib/utils.js:5" }]);
    assert.equal(await run("other.command", [1], next), "done");
    assert.deepEqual(sent, [["other.command", [1]]]);
  });
});

describe("acceptance in Show Stats", () => {
  const acceptance = {
    by_source: { copy: { shown: 4, accepted: 1, partial: 1, typed_through: 1, accept_rate: 0.25 } },
    by_lines: { single: { shown: 4, accepted: 1, partial: 1, typed_through: 1, accept_rate: 0.25 },
      multi: { shown: 0, accepted: 0, partial: 0, typed_through: 0, accept_rate: null } },
    copies_by_file: [{ file: "lib/utils.js", shown: 4, accepted: 1, partial: 1, typed_through: 1, accept_rate: 0.25 }],
    log: null,
  };

  it("lists shown and accepted per source, per line kind and per file copied from", () => {
    const lines = acceptanceLines(acceptance);
    const by = Object.fromEntries(lines.map((l) => [l.label, l.description]));
    assert.equal(by["Accepted: copy"], "1 of 4 accepted (25 %), 1 partly, 1 typed through");
    assert.equal(by["Accepted: single-line"], "1 of 4 accepted (25 %), 1 partly, 1 typed through");
    assert.equal(by["Accepted: multi-line"], undefined, "nothing shown, no line");
    assert.equal(by["Copied from lib/utils.js"], "1 of 4 accepted (25 %), 1 partly, 1 typed through");
    assert.match(by["Acceptance log"] ?? "", /nothing is written or sent/);
  });

  it("is part of the stats quick pick", () => {
    const labels = formatStats({ requests: 3, acceptance: { ...acceptance, log: "/home/u/acc.jsonl" } }).map((l) => l.label);
    assert.ok(labels.includes("Accepted: copy"));
    assert.ok(labels.includes("Acceptance log"));
  });
});
