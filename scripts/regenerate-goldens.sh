#!/usr/bin/env bash
# Writes the golden files of this machine's kernel class (tests/golden/<class>/) from the
# real models, after an intended change or on a class that has none; review with git diff.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
scripts/ensure-models.sh
INSTA_UPDATE=always CROSSBRIEF_REQUIRE_MODELS=1 cargo test --release --locked --test golden --test marian
git status --short tests/golden
