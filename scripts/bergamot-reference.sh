#!/usr/bin/env bash
# Regenerates tests/fixtures/bergamot/dev.por.reference.en: the numpy reference forward pass
# of the Bergamot tiny model (../shared/reference/bergamot_tiny_reference.py; float, greedy,
# no shortlist) on every line of the NTREX dev.por file. Slow (about a second per line).
# Usage: scripts/bergamot-reference.sh [REFERENCE_SCRIPT]
set -euo pipefail
cd "$(dirname "$0")/.."
reference=${1:-../shared/reference/bergamot_tiny_reference.py}
venv=target/reference-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy tokenizers
scripts/ensure-models.sh >/dev/null
model=$(dirname "$(./target/release/crossbrief -q models list 2>/dev/null | awk '/model.pten.intgemm.alphas.bin/ {print $NF; exit}')")
# The reference reads model.pten.intgemm.alphas.bin and tokenizer.json from one folder.
mapfile -t lines < tests/fixtures/ntrex-dev/dev.por
"$venv/bin/python" "$reference" "$model" pten "${lines[@]}" > tests/fixtures/bergamot/dev.por.reference.en
wc -l tests/fixtures/bergamot/dev.por.reference.en
