#!/usr/bin/env bash
# Resume after kill -9: a run over the samples killed with SIGKILL at KILLS random moments (each
# re-run resuming from the work store), then one uninterrupted re-run. Checks that the final
# outputs are byte-identical to a run never interrupted (brief.json without its run record,
# brief.md without its generation line, every page), and that the re-run reused every unit that
# had been stored and computed only the rest. Prints the times.
#
#   scripts/resume-check.sh [KILLS] [SEED]        (default 5 kills, seed from the clock)
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-5}
seed=${2:-$(date +%s)}
RANDOM=$seed
bin=target/release/crossbrief
[ -x "$bin" ] || cargo build --release --locked
inputs=tests/fixtures/articles
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
store=$work/store out=$work/out
export XDG_CONFIG_HOME=$work/config
unset CROSSBRIEF_CACHE CROSSBRIEF_NO_CACHE

ms() { date +%s%N | cut -c1-13; }
secs() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); }
entries() { find "$store/units" -type f ! -name '.tmp-*' 2>/dev/null | wc -l; }

t=$(ms)
"$bin" -q run "$inputs" --no-cache --out "$work/reference" >/dev/null
reference_ms=$(( $(ms) - t ))
echo "uninterrupted run, everything computed: $(secs $reference_ms) s (seed $seed)"

spent=0
for i in $(seq "$kills"); do
  # A moment anywhere in the first 40% of an uninterrupted run: each attempt resumes the last,
  # so the kills land in every stage in turn.
  delay=$(( 1000 + RANDOM * (reference_ms * 4 / 10) / 32768 ))
  t=$(ms)
  "$bin" -q run "$inputs" --cache "$store" --out "$out" >/dev/null 2>&1 &
  pid=$!
  sleep "$(secs $delay)"
  kill -9 "$pid" 2>/dev/null || true
  # 137 (128 + SIGKILL) only when the kill, not the run's own end, stopped it.
  status=0
  wait "$pid" 2>/dev/null || status=$?
  if [ "$status" = 137 ]; then what="killed"; else what="finished before the kill (exit $status)"; fi
  spent=$(( spent + $(ms) - t ))
  echo "attempt $i: $what after $(secs $delay) s; the store holds $(entries) units"
done

stored=$(entries)
t=$(ms)
"$bin" -q run "$inputs" --cache "$store" --out "$out" >/dev/null
final_ms=$(( $(ms) - t ))
spent=$(( spent + final_ms ))
python3 - "$work/reference" "$out" "$stored" "$(entries)" "$reference_ms" "$final_ms" "$spent" <<'PY'
import json, pathlib, sys
reference, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
stored, after, reference_ms, final_ms, spent = map(int, sys.argv[3:])

def outputs(d):
    files = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if not p.is_file() or rel.startswith(("superseded", ".crossbrief")):
            continue
        text = p.read_text()
        if rel == "brief.json":
            j = json.loads(text); j.pop("run"); text = json.dumps(j, sort_keys=True)
        elif rel == "brief.md":
            text = "\n".join(l for l in text.splitlines() if not l.startswith("*Generation "))
        files[rel] = text
    return files

a, b = outputs(reference), outputs(out)
same = a == b
print(f"final outputs byte-identical to the uninterrupted run's: {same} ({len(a)} files)")
for name in sorted(set(a) | set(b)):
    if a.get(name) != b.get(name):
        print(f"  differs: {name}")
store = json.loads((out / "brief.json").read_text())["run"]["store"]
print(f"re-run: {store['reused']} units reused (the store held {stored}), {store['computed']} computed, "
      f"{store['corrupt']} corrupt; by task: " + ", ".join(f"{k} {v['reused']}+{v['computed']}" for k, v in store["by_task"].items()))
print(f"re-run {final_ms/1000:.1f} s against {reference_ms/1000:.1f} s uninterrupted: {reference_ms/1000 - final_ms/1000:.1f} s saved; "
      f"all attempts together {spent/1000:.1f} s")
# No stored unit was computed again: every unit computed is a new entry (one computed again
# would overwrite its entry instead), and every stored one was reused.
print(f"the store grew by {after - stored} entries for {store['computed']} units computed")
ok = same and after - stored == store["computed"] and store["reused"] >= stored and store["corrupt"] == 0
sys.exit(0 if ok else 1)
PY
