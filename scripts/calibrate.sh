#!/usr/bin/env bash
# Fits the confidence calibration of each translator from the NTREX dev set (without its
# first document, where the prompts' worked examples come from): every dev line is
# translated with consensus re-decoding of all lines (`--consensus all`), so both the first
# and the re-decoded signals are seen, then `crossbrief calibrate` fits the logistic models
# and writes models/<manifest>.calibration.toml. About 35 minutes per LLM language on 2 cores (each dev line decoded four times), a minute for Portuguese.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/crossbrief
dev=tests/fixtures/ntrex-dev
work=target/calibration
mkdir -p "$work"
eval_lines() { # language, source file
  "$bin" -q eval --from "$1" --src "$dev/$2" --ref "$dev/dev.eng" --docids "$dev/dev.docids" \
    --skip-docs 1 --consensus all --no-download --lines-out "$work/$1.jsonl"
}
eval_lines fr dev.fra
eval_lines ar dev.arb
"$bin" -q calibrate "$work/fr.jsonl" "$work/ar.jsonl" --threshold "${CALIBRATION_THRESHOLD:-0.45}" \
  --fitted-on "NTREX dev (dev.fra, dev.arb without the first document), eval --consensus all" \
  --out models/qwen2.5-coder-1.5b-instruct.calibration.toml
eval_lines pt dev.por
"$bin" -q calibrate "$work/pt.jsonl" --threshold "${CALIBRATION_THRESHOLD:-0.45}" \
  --fitted-on "NTREX dev (dev.por without the first document), eval --consensus all" \
  --out models/bergamot-pt-en-tiny.calibration.toml
