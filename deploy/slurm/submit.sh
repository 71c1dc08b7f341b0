#!/usr/bin/env bash
# Submits a crossbrief run as a Slurm job array of N shards and its merge, which waits for
# every shard to succeed (--dependency=afterok). Prints the two job ids.
#
#   deploy/slurm/submit.sh INPUTS OUT N [extra sbatch options…]
#
# OUT must not hold an earlier run's shards. CROSSBRIEF_BIN (default: crossbrief on PATH) and
# CROSSBRIEF_CACHE are passed on to the jobs, as is the rest of the environment (sbatch's
# --export=ALL). Job logs go to OUT/logs/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: submit.sh INPUTS OUT N [sbatch options]"
inputs=${1:?$usage}
out=${2:?$usage}
n=${3:?$usage}
shift 3
if compgen -G "$out/shard-*" >/dev/null; then
  echo "submit.sh: $out already holds shards of an earlier run; give a new folder" >&2
  exit 1
fi
export CROSSBRIEF_INPUTS=$inputs CROSSBRIEF_OUT=$out
mkdir -p "$out/logs"
array=$(sbatch --parsable --array="0-$((n - 1))" --output="$out/logs/shard-%a.log" "$@" \
  "$here/crossbrief-array.sbatch")
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --output="$out/logs/merge.log" "$@" "$here/crossbrief-merge.sbatch")
echo "$array $merge"
