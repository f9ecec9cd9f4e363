#!/usr/bin/env bash
# Installs llama.cpp from PyPI's llama-cpp-python: the in-process engine (server/engines/llamacpp.py,
# the `fast` extra pins the same version; tests/server/engines/test_llamacpp.py) and the OpenAI-compatible
# server that tests/server/backends/test_llama_server.py serves the shipped model with (a source
# distribution only: pip compiles llama.cpp, ~9-19 min on 2 cores; tests, examples and the
# llama.cpp command-line tools are not built). Idempotent: skipped when it already imports.
# The README's test command runs it before pytest.
set -euo pipefail

VERSION="0.3.36"   # the version the tests were written against; pyproject's `llama` extra allows 0.3.x

log() { printf '[engines setup] %s\n' "$*" >&2; }

if python -c "import llama_cpp.server" 2>/dev/null; then
  log "llama-cpp-python: already installed ($(python -c 'import llama_cpp; print(llama_cpp.__version__)'))"
  exit 0
fi
log "pip install llama-cpp-python[server]==$VERSION (compiles llama.cpp)"
start=$(date +%s)
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF" \
  python -m pip install --quiet "llama-cpp-python[server]==$VERSION"
log "llama-cpp-python built and installed in $(( $(date +%s) - start )) s"
