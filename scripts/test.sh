#!/usr/bin/env bash
# The test suite: unit tests, the binary's integration tests and the golden test with the real
# model (fetched first if absent). Optimised build: a debug-mode LLM is unusably slow.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
scripts/ensure-models.sh
cargo test --release --locked
