// Drives VS Code (code-server's workbench) in headless Chromium with playwright-core, the way a
// user would: open a file, type a line key by key, watch for ghost text, accept it with Tab, save.
// Run by tests/e2e/test_vscode.py, which starts code-server and checks what this script saw:
//
//   node tests/e2e/vscode_driver.mjs CONFIG.json
//
// CONFIG: {url, fileName, typed, outDir, chromium, timeouts: {workbenchMs, readyMs, firstGhostMs,
// ghostMs, finalGhostMs, stepMs}, acceptOffer?, declineOffer?}. Writes OUT_DIR/result.json (always,
// also on failure, with the step that failed) and OUT_DIR/vscode-ghost-text.png. Exit code 0 when
// every step passed.
//
// acceptOffer {text, button, timeoutMs}: after opening the file, wait for a notification whose
// message contains `text` and click its `button` (the extension's setup offer), as a user would;
// the time from that click to the ready status and to the first ghost text goes into the result.
// declineOffer {text, button, timeoutMs}: once ready, the same for a second offer, if it comes.
//
// Latency is measured inside the page on one clock (performance.now()): from the keydown event of
// each typed character to the first animation frame after the editor's DOM shows ghost text
// (Monaco's `.ghost-text-decoration` spans) following that keydown.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, "tools", "package.json"));
const { chromium } = require("playwright-core");

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const T = cfg.timeouts;
mkdirSync(cfg.outDir, { recursive: true });

const STATUS_ITEM = "[id='codeparrot-lsp.codeparrot-lsp']"; // the extension's status bar item
const GHOST = ".monaco-editor .view-lines .ghost-text-decoration, .monaco-editor .ghost-text";
const SUGGEST_WIDGET = ".editor-widget.suggest-widget.visible";
const TOAST = ".notifications-toasts .notification-toast";

const result = { ok: false, step: "", error: null, steps: {}, chars: [], statusHistory: [], console: [] };
const t0 = Date.now();
let page;

function save() {
  writeFileSync(path.join(cfg.outDir, "result.json"), JSON.stringify(result, null, 2));
}

async function step(name, fn) {
  result.step = name;
  const start = Date.now();
  const value = await fn();
  result.steps[name] = Date.now() - start;
  return value;
}

/** Bounded wait for a page-side predicate, with a message that says what was awaited. */
async function waitFor(what, fn, arg, timeout) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (err) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${err.message.split("\n")[0]}`);
  }
}

// Runs in the page before the workbench loads: records keydowns, ghost text and status changes.
function instrument({ ghostSelector, statusSelector }) {
  const rec = { keys: [], ghosts: [], status: [] };
  window.__cp = rec;
  window.addEventListener("keydown", (e) => { rec.keys.push({ key: e.key, t: performance.now() }); }, true);
  const ghostText = () =>
    Array.from(document.querySelectorAll(ghostSelector), (el) => el.textContent ?? "").join("").replace(/\u00a0/g, " ");
  let lastGhost = "";
  let lastStatus = "";
  const seen = new WeakSet();
  const check = () => {
    const els = Array.from(document.querySelectorAll(ghostSelector));
    // Text changed, or the same text rendered anew (Monaco re-renders a line after each edit).
    const fresh = els.some((el) => !seen.has(el));
    els.forEach((el) => seen.add(el));
    const g = ghostText();
    if (g !== lastGhost || (fresh && g !== "")) {
      lastGhost = g;
      const tDom = performance.now();
      // "Visible" = the next frame after the DOM changed.
      requestAnimationFrame(() => rec.ghosts.push({ text: g, tDom, t: performance.now() }));
    }
    const item = document.querySelector(statusSelector);
    const label = item ? (item.querySelector("a")?.getAttribute("aria-label") ?? "") : "";
    if (label !== lastStatus) {
      lastStatus = label;
      rec.status.push({ label, t: performance.now() });
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["aria-label", "class"] });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function editorLine(lineNumber) {
  // The text of one rendered line without ghost text (the file is short: every line is rendered).
  return page.evaluate((n) => {
    const lines = Array.from(document.querySelectorAll(".monaco-editor .view-lines .view-line"));
    lines.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
    const el = lines[n - 1];
    if (!el) return null;
    const clone = el.cloneNode(true);
    clone.querySelectorAll(".ghost-text-decoration").forEach((g) => g.remove());
    return (clone.textContent ?? "").replace(/\u00a0/g, " ");
  }, lineNumber);
}

/** Waits for a notification toast whose message contains `text`, clicks `button`; returns the message. */
async function clickNotification({ text, button, timeoutMs }) {
  const toast = page.locator(TOAST, { hasText: text }).first();
  await toast.waitFor({ state: "visible", timeout: timeoutMs }).catch((err) => {
    throw new Error(`no notification containing ${JSON.stringify(text)} within ${timeoutMs} ms: ${err.message.split("\n")[0]}`);
  });
  const message = (await toast.locator(".notification-list-item-message").innerText()).trim();
  await toast.locator(".monaco-button", { hasText: button }).first().click({ timeout: T.stepMs });
  return message;
}

async function cursor() {
  const text = await page.locator("[id='status.editor.selection']").innerText();
  const m = /Ln (\d+), Col (\d+)/.exec(text);
  return m ? { line: Number(m[1]), col: Number(m[2]) } : null;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    // The flags that keep Chromium off the (closed) network; no sandbox when running as root.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  try {
    // Small window at 2x: the screenshot stays readable when the README scales it down.
    page = await browser.newPage({ viewport: { width: 960, height: 440 }, deviceScaleFactor: 2 });
    page.on("console", (m) => { if (m.type() === "error" && result.console.length < 200) result.console.push(m.text().slice(0, 500)); });
    await page.addInitScript(instrument, { ghostSelector: GHOST, statusSelector: STATUS_ITEM });

    await step("open workbench", async () => {
      await page.goto(cfg.url, { timeout: T.workbenchMs });
      await page.locator(".monaco-workbench .part.editor").waitFor({ timeout: T.workbenchMs });
      await page.locator(".monaco-workbench .part.statusbar").waitFor({ timeout: T.workbenchMs });
    });

    await step("open file", async () => {
      // Quick Open (Ctrl+P) is how a user opens a file by name; retried while the workbench settles.
      const deadline = Date.now() + T.stepMs;
      for (;;) {
        await page.locator(".monaco-workbench").click({ position: { x: 600, y: 300 } }).catch(() => {});
        await page.keyboard.press("Control+P");
        const input = page.locator(".quick-input-widget input");
        try {
          await input.waitFor({ state: "visible", timeout: 5000 });
          await input.fill(cfg.fileName);
          await page.locator(".quick-input-list .monaco-list-row").first().waitFor({ timeout: 10000 });
          await page.keyboard.press("Enter");
          await page.locator(`.tab.active[data-resource-name='${cfg.fileName}']`).waitFor({ timeout: 10000 });
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`could not open ${cfg.fileName} with Quick Open: ${err.message}`);
          await page.keyboard.press("Escape");
        }
      }
      await page.locator(".monaco-editor.focused").waitFor({ timeout: T.stepMs });
    });

    if (cfg.acceptOffer) {
      await step("accept the setup offer", async () => {
        result.offer = await clickNotification(cfg.acceptOffer);
        result.acceptedT = await page.evaluate(() => performance.now());
      });
    }

    await step("extension ready", async () => {
      // Ready, or an error state (failing at once, with the item's tooltip, rather than waiting out the timeout).
      const state = await waitFor(
        "the CodeParrot status bar item in its ready state ($(check) CodeParrot, 'completions on')",
        (sel) => {
          const a = document.querySelector(sel)?.querySelector("a");
          if (!a) return false;
          const label = a.getAttribute("aria-label") ?? "";
          if (a.querySelector(".codicon-error")) return { error: label };
          return !!a.querySelector(".codicon-check") && /completions on/.test(label) ? { ready: label } : false;
        },
        STATUS_ITEM,
        T.readyMs,
      ).then((h) => h.jsonValue());
      if (state.error !== undefined) throw new Error(`the CodeParrot status bar item shows an error: ${state.error}`);
    });

    if (cfg.declineOffer) {
      await step("decline the second offer", async () => {
        result.secondOffer = await clickNotification(cfg.declineOffer).catch((err) => ({ missing: err.message }));
      });
    }

    await step("type line", async () => {
      // End of the last line, then Enter: VS Code indents the new line itself.
      await page.keyboard.press("Control+End");
      await page.keyboard.press("Enter");
      for (const ch of cfg.typed) {
        const keysBefore = await page.evaluate(() => window.__cp.keys.length);
        await page.keyboard.type(ch);
        // Wait for ghost text after this keydown: up to ghostMs, counted from the keydown or from
        // the end of the model's loading (the first completion loads it; the status bar item spins
        // meanwhile), all within firstGhostMs. No ghost text by then counts as none.
        const handle = await waitFor(
          `ghost text or the end of ${T.ghostMs} ms without it after typing ${JSON.stringify(ch)} (the model still loading?)`,
          ({ k, ghostMs, statusSelector, suggestSelector }) => {
            const rec = window.__cp;
            const key = rec.keys[k];
            if (!key) return false;
            const now = performance.now();
            const widget = document.querySelector(suggestSelector) !== null;
            const g = rec.ghosts.find((x) => x.tDom >= key.t && x.text !== "");
            if (g) {
              const shown = rec.ghosts.filter((x) => x.tDom < key.t);
              const prev = shown.length ? shown[shown.length - 1].text : "";
              return { latency: g.t - key.t, text: g.text, prev, widget };
            }
            if (document.querySelector(statusSelector)?.querySelector(".codicon-sync")) rec.loadingSeen = now;
            const since = Math.max(key.t, rec.loadingSeen ?? 0);
            return now - since > ghostMs ? { latency: null, text: "", prev: "", widget } : false;
          },
          { k: keysBefore, ghostMs: T.ghostMs, statusSelector: STATUS_ITEM, suggestSelector: SUGGEST_WIDGET },
          T.firstGhostMs,
        );
        const { latency, text: ghost, prev, widget } = await handle.jsonValue();
        // Typed ahead: the character typed was the start of the ghost text shown, and VS Code now
        // shows the rest (no new completion needed); otherwise the ghost text is a new completion.
        const typedAhead = latency !== null && prev.startsWith(ch) && ghost === prev.slice(ch.length);
        // suggestWidget: VS Code's suggest widget (word / TypeScript suggestions) was open.
        result.chars.push({ ch, latencyMs: latency, ghost, typedAhead, suggestWidget: widget });
      }
    });

    const before = await step("ghost text after the line", async () => {
      await waitFor("ghost text after typing the whole line", (s) => document.querySelectorAll(s).length > 0, GHOST, T.finalGhostMs);
      await page.waitForTimeout(500); // let a still-running request settle
      await waitFor("ghost text after typing the whole line", (s) => document.querySelectorAll(s).length > 0, GHOST, T.finalGhostMs);
      const ghost = (await page.evaluate((s) => Array.from(document.querySelectorAll(s), (e) => e.textContent).join(""), GHOST)).replace(/\u00a0/g, " ");
      const pos = await cursor();
      const line = await editorLine(pos.line);
      // The suggest widget (classic completion menu) must not be what Tab accepts below.
      const suggestWidget = await page.locator(SUGGEST_WIDGET).count();
      return { ghost, line, cursor: pos, suggestWidget };
    });
    result.before = before;
    result.screenshot = path.join(cfg.outDir, "vscode-ghost-text.png");
    await page.screenshot({ path: result.screenshot });

    await step("accept with Tab", async () => {
      await page.keyboard.press("Tab");
      await waitFor("the ghost text to be inserted by Tab (no ghost text left)", (s) => document.querySelectorAll(s).length === 0, GHOST, T.stepMs);
      result.lineAfter = await editorLine(before.cursor.line);
      result.cursorAfter = await cursor();
    });

    await step("save", async () => {
      await page.keyboard.press("Control+S");
      await waitFor(`${cfg.fileName} saved (its tab no longer dirty)`, (name) => {
        const tab = document.querySelector(`.tab[data-resource-name='${name}']`);
        return !!tab && !tab.classList.contains("dirty");
      }, cfg.fileName, T.stepMs);
    });

    await step("show stats", async () => {
      await page.keyboard.press("Control+Shift+P");
      const input = page.locator(".quick-input-widget input");
      await input.waitFor({ state: "visible", timeout: T.stepMs });
      await input.fill(">CodeParrot: Show Stats");
      await page.locator(".quick-input-list .monaco-list-row", { hasText: "Show Stats" }).first().waitFor({ timeout: T.stepMs });
      await page.keyboard.press("Enter");
      const row = page.locator(".quick-input-list .monaco-list-row", { hasText: "Requests" });
      await row.first().waitFor({ timeout: T.stepMs });
      result.stats = await page.locator(".quick-input-list .monaco-list-row").allInnerTexts();
      await page.keyboard.press("Escape");
    });

    const rec = await page.evaluate(() => window.__cp);
    result.statusHistory = rec.status.map((s) => ({ label: s.label, tMs: Math.round(s.t) }));
    result.statusFinal = rec.status.length ? rec.status[rec.status.length - 1].label : "";
    if (result.acceptedT !== undefined) {
      // From the click on the offer, on the page's clock: the status bar's first "completions on",
      // and the first ghost text on screen.
      const ready = rec.status.find((s) => s.t >= result.acceptedT && /completions on/.test(s.label));
      const ghost = rec.ghosts.find((g) => g.t >= result.acceptedT && g.text !== "");
      result.acceptToReadyMs = ready ? ready.t - result.acceptedT : null;
      result.acceptToFirstGhostMs = ghost ? ghost.t - result.acceptedT : null;
    }
    const latencies = result.chars.map((c) => c.latencyMs).filter((x) => x !== null);
    result.latency = {
      p50Ms: median(latencies),
      // The first keystroke also waits for the model to load; the rest is typing as usual.
      p50AfterFirstMs: median(result.chars.slice(1).map((c) => c.latencyMs).filter((x) => x !== null)),
      firstMs: result.chars[0]?.latencyMs ?? null,
      p50NewMs: median(result.chars.slice(1).filter((c) => c.latencyMs !== null && !c.typedAhead).map((c) => c.latencyMs)),
      p50TypedAheadMs: median(result.chars.filter((c) => c.latencyMs !== null && c.typedAhead).map((c) => c.latencyMs)),
      typedAhead: result.chars.filter((c) => c.typedAhead).length,
      suggestWidgetOpen: result.chars.filter((c) => c.suggestWidget).length,
      maxMs: latencies.length ? Math.max(...latencies) : null,
      withGhost: latencies.length,
      typed: result.chars.length,
    };
    result.ok = true;
    result.step = "done";
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    if (page) {
      await page.screenshot({ path: path.join(cfg.outDir, "failure.png") }).catch(() => {});
      result.statusFinal = await page.evaluate((s) => document.querySelector(s)?.querySelector("a")?.getAttribute("aria-label") ?? "(no CodeParrot status bar item)", STATUS_ITEM).catch(() => "");
    }
  } finally {
    result.wallMs = Date.now() - t0;
    save();
    await browser.close();
  }
}

await main();
process.exit(result.ok ? 0 : 1);
