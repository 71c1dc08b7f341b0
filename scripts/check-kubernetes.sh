#!/usr/bin/env bash
# Checks deploy/kubernetes/ offline, as far as that can go without a cluster:
#  - every manifest against the Kubernetes OpenAPI schemas of 1.30 and 1.33
#    (kubernetes-validate from PyPI bundles them; --strict rejects unknown fields);
#  - what no schema knows: the shards Job is Indexed, its CROSSBRIEF_SHARD_COUNT equals its
#    completions, every claim a Job mounts is defined in storage.yaml, and the merge reads the
#    folders the shards write.
# Not checked: admission (quotas, storage classes), scheduling, and the image itself.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/k8s-venv
if ! "$venv/bin/python" -c "import kubernetes_validate, yaml" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate==1.37.0 PyYAML==6.0.4 jsonschema==4.26.0 referencing==0.37.0
fi
for version in 1.30.0 1.33.0; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" deploy/kubernetes/*.yaml
done
"$venv/bin/python" - <<'PY'
import glob, sys, yaml
docs = [d for f in sorted(glob.glob("deploy/kubernetes/*.yaml")) for d in yaml.safe_load_all(open(f)) if d]
jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
problems = []
shards = jobs["crossbrief-shards"]["spec"]
if shards.get("completionMode") != "Indexed":
    problems.append("crossbrief-shards is not an Indexed Job")
env = {e["name"]: e.get("value") for e in shards["template"]["spec"]["containers"][0]["env"]}
if env.get("CROSSBRIEF_SHARD_COUNT") != str(shards["completions"]):
    problems.append(f"CROSSBRIEF_SHARD_COUNT {env.get('CROSSBRIEF_SHARD_COUNT')} != completions {shards['completions']}")
args = " ".join(shards["template"]["spec"]["containers"][0]["args"])
if "--shard auto" not in args or "/data/out/shard-" not in args:
    problems.append("the shards do not run --shard auto into /data/out/shard-<index>")
merge = " ".join(jobs["crossbrief-merge"]["spec"]["template"]["spec"]["containers"][0]["args"])
if "merge /data/out/shard-*/" not in merge:
    problems.append("the merge does not read /data/out/shard-*/")
for name, job in jobs.items():
    for v in job["spec"]["template"]["spec"].get("volumes", []):
        claim = v.get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim not in claims:
            problems.append(f"{name} mounts claim {claim}, which storage.yaml does not define")
for p in problems:
    print("deploy/kubernetes:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
for f in deploy/slurm/*.sbatch deploy/slurm/*.sh deploy/kubernetes/*.sh scripts/slurm/*.sh; do
  bash -n "$f"
done
echo "deploy/kubernetes: valid against Kubernetes 1.30 and 1.33 (strict), shard count = completions"
