#!/usr/bin/env bash
# The Slurm path end to end on a private cluster: bring it up (scripts/slurm/cluster.sh),
# submit INPUTS as an N-task array and its merge (deploy/slurm/submit.sh), wait for both, check
# every task's exit code, and stop the cluster whatever happened. Prints the wall time of each
# part. The merged brief is in OUT/merged, the job logs in OUT/logs.
#
#   scripts/slurm/run-array.sh CLUSTER_DIR INPUTS OUT N
#
# CROSSBRIEF_BIN defaults to this checkout's release build; the tasks share one work store in
# OUT/store unless CROSSBRIEF_CACHE says otherwise. CROSSBRIEF_SLURM_TIMEOUT (seconds, default
# 3600) bounds the wait for the jobs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
usage="usage: run-array.sh CLUSTER_DIR INPUTS OUT N"
cluster=${1:?$usage}
inputs=${2:?$usage}
out=${3:?$usage}
n=${4:?$usage}
export CROSSBRIEF_BIN=${CROSSBRIEF_BIN:-$root/target/release/crossbrief}
export CROSSBRIEF_CACHE=${CROSSBRIEF_CACHE:-$out/store}
deadline=$(( $(date +%s) + ${CROSSBRIEF_SLURM_TIMEOUT:-3600} ))
mkdir -p "$out"

now() { date +%s%N; }
took() { local ms=$(( ($(now) - $1) / 1000000 )); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }

# Set before bring-up, so that a half-started cluster is stopped too.
trap 't=$(now); "$root/scripts/slurm/cluster.sh" down "$cluster"; echo "teardown: $(took "$t") s" >&2' EXIT
t=$(now)
# Captured first: `eval "$(failing command)"` would succeed and go on with no SLURM_CONF.
environment=$("$root/scripts/slurm/cluster.sh" up "$cluster")
eval "$environment"
[ -n "${SLURM_CONF:-}" ] || { echo "run-array.sh: cluster.sh up gave no SLURM_CONF" >&2; exit 1; }
echo "bring-up: $(took "$t") s" >&2

t=$(now)
# One CPU a task, so that two shards run at once on a 2-core node.
ids=$("$root/deploy/slurm/submit.sh" "$inputs" "$out" "$n" --cpus-per-task=1 -D "$PWD")
read -r array merge <<<"$ids"
echo "submitted array $array ($n tasks) and merge $merge" >&2
# squeue every half second: faster than sbatch --wait, which polls every ~10 s.
while [ -n "$(squeue -h -j "$array,$merge" 2>/dev/null)" ]; do
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "run-array.sh: the jobs did not finish in ${CROSSBRIEF_SLURM_TIMEOUT:-3600} s" >&2
    squeue >&2 || true
    exit 1
  fi
  sleep 0.5
done
echo "array and merge: $(took "$t") s" >&2

failed=0
for job in $(seq -f "${array}_%g" 0 $((n - 1))) "$merge"; do
  line=$(scontrol -o show job "$job" 2>/dev/null || true)
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2 || true)
  code=$(grep -o ' ExitCode=[0-9:]*' <<<"$line" | cut -d= -f2 || true)
  echo "  job $job: ${state:-unknown} exit ${code:-?}" >&2
  [ "$state" = COMPLETED ] || failed=1
done
if [ "$failed" != 0 ]; then
  for f in "$out"/logs/*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done
  exit 1
fi
