// The server wheel bundled in the .vsix (out/server/, written by extension/package-server.mjs):
// its manifest, and the sha256 check that runs before pip ever reads the wheel.

import { createHash } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import * as path from "node:path";

export const BUNDLE_DIR = path.join("out", "server");
export const MANIFEST_NAME = "manifest.json";

/** out/server/manifest.json, as package-server.mjs writes it. */
export interface BundleManifest {
  name: string;
  version: string;
  requiresPython: string;
  /** The wheel's extras (Provides-Extra): the llama.cpp engine is offered only when `fast` is one. */
  extras: string[];
  wheel: string;
  sha256: string;
  size: number;
}

export interface Bundle extends BundleManifest {
  /** Absolute path of the wheel. */
  wheelPath: string;
}

export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleError";
  }
}

export class TamperedWheelError extends Error {
  constructor(
    readonly wheelPath: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `The bundled server wheel ${wheelPath} does not match the extension's manifest ` +
        `(sha256 ${actual}, expected ${expected}): it was changed or damaged after packaging, so it ` +
        "was not installed. Reinstall the extension.",
    );
    this.name = "TamperedWheelError";
  }
}

function isManifest(v: unknown): v is BundleManifest {
  if (typeof v !== "object" || v === null) return false;
  const m = v as Record<string, unknown>;
  return (
    ["name", "version", "requiresPython", "wheel", "sha256"].every((k) => typeof m[k] === "string") &&
    typeof m.size === "number" &&
    Array.isArray(m.extras) &&
    m.extras.every((e) => typeof e === "string") &&
    /^[0-9a-f]{64}$/.test(m.sha256 as string) &&
    !(m.wheel as string).includes("/") &&
    !(m.wheel as string).includes("\\")
  );
}

/**
 * The bundled server of the extension installed at `extensionRoot`, or undefined when this build
 * has none (`npm run build` alone writes no out/server/). A manifest that is there but unreadable
 * is an error, not "no bundle".
 */
export async function readBundle(extensionRoot: string): Promise<Bundle | undefined> {
  const file = path.join(extensionRoot, BUNDLE_DIR, MANIFEST_NAME);
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new BundleError(`${file} is not JSON (${err instanceof Error ? err.message : String(err)}): reinstall the extension`);
  }
  if (!isManifest(parsed)) throw new BundleError(`${file} is not a server manifest: reinstall the extension`);
  return { ...parsed, wheelPath: path.join(extensionRoot, BUNDLE_DIR, parsed.wheel) };
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => { resolve(hash.digest("hex")); });
  });
}

/** Throws TamperedWheelError unless the wheel's bytes are the ones the manifest names. */
export async function verifyWheel(bundle: Bundle): Promise<void> {
  let actual: string;
  try {
    actual = await sha256File(bundle.wheelPath);
  } catch (err) {
    throw new BundleError(
      `The bundled server wheel ${bundle.wheelPath} cannot be read (${err instanceof Error ? err.message : String(err)}): reinstall the extension`,
    );
  }
  if (actual !== bundle.sha256) throw new TamperedWheelError(bundle.wheelPath, bundle.sha256, actual);
}
