#!/usr/bin/env bash
# The test suite: unit tests, the binary's integration tests and the golden test with the real
# model (fetched first if absent). Optimised build: a debug-mode LLM is unusably slow.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
scripts/ensure-models.sh

# The tiny-checkpoint tests generate their model with numpy (scripts/make-tiny-marian.py):
# a virtualenv of the project's own, so nothing depends on what a machine happens to have.
venv=target/test-venv
if ! "$venv/bin/python" -c "import numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check numpy==2.4.6
fi
export CROSSBRIEF_PYTHON="$PWD/$venv/bin/python"

# The review page is checked in a real browser: Debian's Chromium (installed when absent, as
# root) driven by playwright-core, pinned in tests/browser/package-lock.json and installed
# from npm into target/browser-test.
if ! [ -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing Debian's chromium for the review page's browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: the browser test needs Debian's chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "test.sh: the browser test needs Node.js 20 or later (playwright-core 1.65); found: $(node --version 2>&1 || echo none)" >&2
  exit 1
fi
browser=target/browser-test
if ! cmp -s tests/browser/package-lock.json "$browser/package-lock.json" \
  || ! [ -f "$browser/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$browser"
  cp tests/browser/package.json tests/browser/package-lock.json "$browser/"
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
export PLAYWRIGHT_CORE="$PWD/$browser/node_modules/playwright-core"
export CROSSBRIEF_REQUIRE_BROWSER=1
# Everything runs here: a test that would skip for a missing model or numpy fails instead.
export CROSSBRIEF_REQUIRE_MODELS=1
# As root (CI), the Slurm test brings up a private single-node cluster from Debian's packages,
# installing them when absent; elsewhere it is skipped.
if [ "$(id -u)" = 0 ]; then
  export CROSSBRIEF_TEST_SLURM=1
fi

cargo test --release --locked
