// Bundles the extension into out/extension.js (CommonJS, as VS Code loads it). `vscode` is
// provided by the editor at run time; everything else, vscode-languageclient included, is bundled
// so the .vsix ships no node_modules (`vsce package --no-dependencies`).
import * as esbuild from "esbuild";

const production = !process.argv.includes("--dev");

await esbuild.build({
  entryPoints: ["extension/src/extension.ts"],
  bundle: true,
  outfile: "out/extension.js",
  external: ["vscode"],
  format: "cjs",
  platform: "node",
  target: "node20",
  minify: production,
  sourcemap: !production,
  logLevel: "info",
});
