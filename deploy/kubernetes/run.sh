#!/usr/bin/env bash
# Runs crossbrief on a Kubernetes cluster: storage, models (once), the Indexed Job of shards,
# then the merge once every shard has completed. Articles go in /data/articles of the
# crossbrief-data volume beforehand, and /data/out must not hold an earlier run's shards
# (merge refuses shards of another count, and names them).
#
#   deploy/kubernetes/run.sh [TIMEOUT_SECONDS]     (default 86400)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
timeout=${1:-86400}

# Waits until job $1 completes (0) or fails (1): `kubectl wait` takes one condition only, and
# would sit out its whole timeout on a failed Job.
wait_for() {
  local job=$1 limit=$(( $(date +%s) + $2 )) state
  while [ "$(date +%s)" -lt "$limit" ]; do
    state=$(kubectl get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
    case " $state " in
      *" Complete "*) return 0 ;;
      *" Failed "*) echo "job $job failed:" >&2; kubectl describe job "$job" >&2; return 1 ;;
    esac
    sleep 10
  done
  echo "job $job did not finish in $2 s" >&2
  return 1
}

kubectl apply -f "$here/storage.yaml"
kubectl apply -f "$here/models-job.yaml"
wait_for crossbrief-models 3600
kubectl delete job crossbrief-shards crossbrief-merge --ignore-not-found
kubectl apply -f "$here/shards-job.yaml"
wait_for crossbrief-shards "$timeout"
kubectl apply -f "$here/merge-job.yaml"
wait_for crossbrief-merge 3600
kubectl logs job/crossbrief-merge
