#!/usr/bin/env bash
# The main job on the bundled sample articles: builds crossbrief, makes sure the models are in
# the local Hugging Face cache (from the hub, else from the offline mirror), then runs it.
# Usage: scripts/run-sample.sh [OUT_DIR]   (default: out)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out}"

cargo build --release --locked
scripts/ensure-models.sh
exec ./target/release/crossbrief run tests/fixtures/articles --out "$out"
