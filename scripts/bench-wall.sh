#!/usr/bin/env bash
# The sample job's wall time, this checkout against a baseline commit, measured alternately on
# the same machine (baseline, new, baseline, new, ...), with each run's stage table and peak
# memory, and the ratio of the medians. The baseline is built from `git archive` in its own
# target folder (target/bench/wall/<commit>-target), so this checkout's build stays warm.
# Usage: scripts/bench-wall.sh [RUNS] [BASELINE]   (defaults: 3 runs each, commit 513151b)
# The first run builds the baseline (4-15 minutes on 2 cores); each sample run takes 1.5-5.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
base=${2:-513151b}
out=target/bench/wall
src="$out/$base-src"
mkdir -p "$out"

cargo build --release --locked --quiet
scripts/ensure-models.sh >/dev/null
if [ ! -x "$out/$base-target/release/crossbrief" ]; then
  echo "bench-wall: building $base in $out/$base-target" >&2
  rm -rf "$src" && mkdir -p "$src"
  git archive "$base" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR="$PWD/../$base-target" cargo build --release --locked --quiet)
fi
cp target/release/crossbrief "$out/new"
cp "$out/$base-target/release/crossbrief" "$out/base"
root=$PWD
# Each binary runs in its own source tree: a checkout's models/ and prompts/ are its own.
declare -A tree=([base]="$root/$src" [new]="$root")

for i in $(seq 1 "$runs"); do
  for who in base new; do
    # The baseline predates the work store; the new binary computes everything too.
    flags=()
    [ "$who" = new ] && flags=(--no-cache)
    echo "bench-wall: run $i/$runs, $who" >&2
    rm -rf "$out/$who-$i"
    (cd "${tree[$who]}" && /usr/bin/time -f '%e %M' -o "$root/$out/$who-$i.time" \
      "$root/$out/$who" -q run "$root/tests/fixtures/articles" "${flags[@]}" --out "$root/$out/$who-$i" >/dev/null)
  done
done

python3 - "$out" "$runs" "$base" <<'EOF'
import json, statistics, sys
out, runs, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
walls = {"base": [], "new": []}
for who in walls:
    for i in range(1, runs + 1):
        wall, peak_kb = open(f"{out}/{who}-{i}.time").read().split()
        walls[who].append((float(wall), int(peak_kb) / 1024))
print(f"| run | {base} wall s | new wall s | {base} peak MiB | new peak MiB |")
print("|---|---|---|---|---|")
for i in range(runs):
    b, n = walls["base"][i], walls["new"][i]
    print(f"| {i + 1} | {b[0]:.1f} | {n[0]:.1f} | {b[1]:.0f} | {n[1]:.0f} |")
mb = statistics.median(w for w, _ in walls["base"])
mn = statistics.median(w for w, _ in walls["new"])
print(f"\nmedian wall: {base} {mb:.1f} s, new {mn:.1f} s, ratio new/{base} {mn / mb:.3f}\n")
for who, label in (("base", base), ("new", "new")):
    stages = json.load(open(f"{out}/{who}-{runs}/brief.json"))["run"]["stages"]
    print(f"stages of {label}, run {runs}:")
    print("| stage | wall s | prefill s | prompt tok | prefill tok/s | decode s | new tok | decode tok/s | steps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in stages:
        print(f"| {s['name']} | {s['wall_s']:.1f} | {s.get('prefill_s', 0):.1f} | {s.get('prompt_tokens', 0)} "
              f"| {s.get('prefill_tokens_per_s', 0):.0f} | {s.get('decode_s', 0):.1f} | {s.get('generated_tokens', 0)} "
              f"| {s.get('decode_tokens_per_s', 0):.1f} | {s.get('decode_steps', 0)} |")
    print()
EOF
