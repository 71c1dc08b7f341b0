#!/usr/bin/env bash
# LLM performance on the bundled sample articles, beside llama.cpp on the same GGUF file and
# the same prompts, in the same run:
#   1. the main job (`crossbrief run`), recording every LLM prompt it decodes
#      (CROSSBRIEF_RECORD_PROMPTS), with its stage table and peak memory;
#   2. crossbrief replaying those prompts one at a time (batch 1);
#   3. llama.cpp (llama-cpp-python, built from PyPI in a throwaway virtualenv under target/)
#      on the same token ids, one sequence at a time and with parallel sequences, generating
#      exactly as many tokens per prompt as crossbrief did;
#   4. the machine's memory read bandwidth, the ceiling of one-sequence decoding;
#   5. decode throughput at fixed length (64 new tokens per row, past stop tokens) at 1, 8,
#      16 and 32 rows, crossbrief and llama.cpp, as llama-batched-bench measures it: the
#      best batched aggregate, which a real run's ragged batches (rows finishing at
#      different times) do not show;
#   6. the sample job's wall time against commit 513151b's binary, alternately, BENCH_RUNS
#      runs each (default 3; scripts/bench-wall.sh, which builds 513151b in its own target).
# Prints the tables (scripts/bench_report.py, then bench-wall's); the raw figures stay in
# target/bench/llm/ and target/bench/wall/.
# Usage: scripts/bench.sh            (about 50 minutes with models cached; the first run also
#                                     compiles llama.cpp, 15-35 minutes, and 513151b, 4-15)
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench/llm
mkdir -p "$out"
bin=./target/release/crossbrief

cargo build --release --locked --quiet
scripts/ensure-models.sh >/dev/null

venv=target/bench-llama-venv
if ! "$venv/bin/python" -c "import llama_cpp, numpy" 2>/dev/null; then
  echo "bench: building llama-cpp-python==0.3.36 from source in $venv (15-35 minutes on 2 cores)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install --quiet --disable-pip-version-check \
    --no-cache-dir llama-cpp-python==0.3.36 numpy==2.4.6
fi

echo "bench: 1/8 main job on tests/fixtures/articles (recording its LLM prompts)" >&2
rm -f "$out/prompts.jsonl"
# --no-cache: computed, not taken from a work store, since the run is what is measured.
CROSSBRIEF_RECORD_PROMPTS="$out/prompts.jsonl" /usr/bin/time -v -o "$out/run.time" \
  "$bin" -q run tests/fixtures/articles --no-cache --out "$out/run" >/dev/null
gguf=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["run"]; print(next(f["path"] for m in r["models"] for f in m["files"] if f["name"].endswith(".gguf")))' "$out/run/brief.json")
rows=$(python3 -c 'import json,sys; print(max(s.get("largest_batch",0) for s in json.load(open(sys.argv[1]))["run"]["stages"]) or 1)' "$out/run/brief.json")

echo "bench: 2/8 crossbrief, the same prompts one at a time" >&2
"$bin" -q bench llm "$out/prompts.jsonl" --batch-rows 1 --json >"$out/crossbrief-batch1.json"

echo "bench: 3/8 llama.cpp, one sequence at a time" >&2
"$venv/bin/python" scripts/bench_llm.py --gguf "$gguf" --prompts "$out/prompts.jsonl" \
  --mode single >"$out/llama-single.json" 2>"$out/llama-single.log"

echo "bench: 4/8 llama.cpp, up to $rows parallel sequences" >&2
"$venv/bin/python" scripts/bench_llm.py --gguf "$gguf" --prompts "$out/prompts.jsonl" \
  --mode parallel --batch-rows "$rows" >"$out/llama-parallel.json" 2>"$out/llama-parallel.log"

echo "bench: 5/8 memory bandwidth" >&2
"$bin" -q bench bandwidth --json >"$out/bandwidth.json"

sizes=1,8,16,32
echo "bench: 6/8 crossbrief, decode throughput at $sizes rows" >&2
"$bin" -q bench llm "$out/prompts.jsonl" --sweep "$sizes" --new-tokens 64 --json >"$out/crossbrief-sweep.json"

echo "bench: 7/8 llama.cpp, decode throughput at $sizes sequences" >&2
"$venv/bin/python" scripts/bench_llm.py --gguf "$gguf" --prompts "$out/prompts.jsonl" \
  --mode sweep --sweep "$sizes" --new-tokens 64 >"$out/llama-sweep.json" 2>"$out/llama-sweep.log"

python3 scripts/bench_report.py "$out" | tee "$out/report.md"

echo "bench: 8/8 the sample job against 513151b, alternately" >&2
scripts/bench-wall.sh "${BENCH_RUNS:-3}" 513151b | tee "$out/wall.md"
