import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { formatStats } from "../src/stats";
import { SETUP_COMMAND, SHOW_LOGS_COMMAND, stateAfterProgress, statusView, TOGGLE_COMMAND } from "../src/status";

describe("statusView", () => {
  it("shows loading progress as a percentage", () => {
    const v = statusView({ kind: "loading", message: "weights", percentage: 41.6 });
    assert.equal(v.text, "$(sync~spin) CodeParrot 42%");
    assert.match(v.tooltip, /loading the model — weights/);
  });

  it("toggles completions on click when ready or disabled", () => {
    assert.equal(statusView({ kind: "ready" }).command, TOGGLE_COMMAND);
    assert.equal(statusView({ kind: "disabled" }).command, TOGGLE_COMMAND);
    assert.notEqual(statusView({ kind: "ready" }).text, statusView({ kind: "disabled" }).text);
  });

  it("opens the logs on click after an error and carries the message", () => {
    const v = statusView({ kind: "error", message: "model not found" });
    assert.equal(v.command, SHOW_LOGS_COMMAND);
    assert.equal(v.background, "error");
    assert.match(v.tooltip, /model not found/);
  });
});

describe("statusView while the server is set up", () => {
  it("offers the setup on click while none is set up, without an error look", () => {
    const v = statusView({ kind: "setup", message: "the completion server is not set up" });
    assert.equal(v.command, SETUP_COMMAND);
    assert.equal(v.background, "warning");
    assert.doesNotMatch(v.text, /error/);
    assert.match(v.tooltip, /click to set up/);
  });

  it("spins with the current step while installing", () => {
    const v = statusView({ kind: "installing", message: "Installing CPU PyTorch 2.13.0" });
    assert.equal(v.text, "$(sync~spin) CodeParrot");
    assert.match(v.tooltip, /Installing CPU PyTorch 2\.13\.0/);
    assert.equal(v.command, SHOW_LOGS_COMMAND);
  });
});

describe("stateAfterProgress", () => {
  it("follows begin → report → end", () => {
    assert.deepEqual(stateAfterProgress({ kind: "begin", title: "Loading model" }, true), {
      kind: "loading",
      message: "Loading model",
    });
    assert.deepEqual(stateAfterProgress({ kind: "report", message: "tokenizer", percentage: 50 }, true), {
      kind: "loading",
      message: "tokenizer",
      percentage: 50,
    });
    assert.deepEqual(stateAfterProgress({ kind: "end" }, true), { kind: "ready" });
    assert.deepEqual(stateAfterProgress({ kind: "end", message: "Model ready" }, false), { kind: "disabled" });
  });

  it("turns a failed load into an error state", () => {
    assert.deepEqual(stateAfterProgress({ kind: "end", message: "Model failed to load" }, true), {
      kind: "error",
      message: "Model failed to load",
    });
  });
});

describe("formatStats", () => {
  it("lists counts, the last request and each stage's percentiles", () => {
    const lines = formatStats({
      requests: 12,
      cancelled: 3,
      cache_hits: 4,
      last: { prompt_tokens: 200, prompt_tokens_computed: 2, new_tokens: 16 },
      stages_ms: { generate: { p50: 41.234, p95: 80, p99: 99.99, count: 9 } },
    });
    assert.deepEqual(lines, [
      { label: "Requests", description: "12 total, 3 cancelled, 4 cache hits" },
      { label: "Last request", description: "200 prompt tokens (2 computed), 16 new tokens" },
      { label: "Stage generate", description: "p50 41.2 ms · p95 80 ms · p99 100 ms · 9 runs" },
    ]);
  });

  it("survives a malformed answer", () => {
    assert.equal(formatStats(null)[0]?.label, "No statistics");
    assert.equal(formatStats({ requests: "x" })[0]?.description, "– total, – cancelled, – cache hits");
  });
});
