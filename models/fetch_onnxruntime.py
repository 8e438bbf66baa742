#!/usr/bin/env python3
"""Fetch the ONNX Runtime shared library from the PyPI `onnxruntime` wheel.

Benchtop loads ONNX Runtime at run time (ort's `load-dynamic`), so the library must be on disk.
PyPI is the one place it can be had offline-friendly here: this script downloads the pinned wheel
for this platform with pip, checks its sha256, and extracts `libonnxruntime*` into
`<cache>/onnxruntime/<version>/`, where `benchtop` looks for it. Idempotent: a library already
extracted from a wheel with the expected hash is kept.

Standard library only (pip is called as a subprocess), so it runs before the venv has anything.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from benchtop_models import cache_dir, sha256

DEFAULT_VERSION = "1.32.0"

# (version, platform key) -> (pip platform tag, wheel sha256, library file names inside the wheel)
WHEELS = {
    ("1.32.0", "linux-x86_64"): (
        "manylinux_2_28_x86_64",
        "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
        ["libonnxruntime.so.1.32.0", "libonnxruntime_providers_shared.so"],
    ),
    ("1.32.0", "macos-arm64"): (
        "macosx_14_0_arm64",
        "366b9e53d07812cc5c92822cecf7563b76a8a0f32ba3bb8dd232a206ac3bcb6c",
        ["libonnxruntime.1.32.0.dylib"],
    ),
    ("1.32.0", "windows-x86_64"): (
        "win_amd64",
        "d7e0c45cc5f456ad7805e6dd256a7662736cda9c2fd17becae194eb3c2f6df72",
        ["onnxruntime.dll", "onnxruntime_providers_shared.dll"],
    ),
    # An older runtime than Benchtop supports; only the test suite fetches it, to check that
    # loading it fails with a clear message.
    ("1.20.1", "linux-x86_64"): (
        "manylinux_2_27_x86_64",
        "5eec64c0269dcdb8d9a9a53dc4d64f87b9e0c19801d9321246a53b7eb5a7d1bc",
        ["libonnxruntime.so.1.20.1", "libonnxruntime_providers_shared.so"],
    ),
}


def platform_key() -> str:
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "macos", "windows": "windows"}.get(sys.platform.rstrip("0123456789"), sys.platform)
    return f"{system}-{arch}"


def fetch(version: str, key: str, cache: Path) -> Path:
    try:
        tag, wheel_sha, libs = WHEELS[(version, key)]
    except KeyError:
        known = ", ".join(f"{v} on {k}" for v, k in WHEELS)
        sys.exit(f"error: no pinned onnxruntime wheel for {version} on {key} (known: {known}). "
                 "Install ONNX Runtime yourself and point BENCHTOP_ORT_LIB at the library.")
    dest = cache / "onnxruntime" / version
    stamp = dest / ".wheel-sha256"
    if stamp.is_file() and stamp.read_text().strip() == wheel_sha and all((dest / lib).is_file() for lib in libs):
        print(f"onnxruntime {version}: already in {dest}")
        return dest / libs[0]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--platform", tag, "--python-version", "3.11", "--dest", tmp, f"onnxruntime=={version}"]
        subprocess.run(cmd, check=True)
        wheels = list(Path(tmp).glob("onnxruntime-*.whl"))
        if len(wheels) != 1:
            sys.exit(f"error: pip did not download exactly one onnxruntime wheel: {wheels}")
        got = sha256(wheels[0])
        if got != wheel_sha:
            sys.exit(f"error: {wheels[0].name} has sha256 {got}, expected {wheel_sha}; refusing to use it.")
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with zipfile.ZipFile(wheels[0]) as zf:
            for lib in libs:
                with zf.open(f"onnxruntime/capi/{lib}") as src, (staging / lib).open("wb") as out:
                    shutil.copyfileobj(src, out)
        (staging / ".wheel-sha256").write_text(wheel_sha + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    print(f"onnxruntime {version}: extracted {', '.join(libs)} into {dest}")
    return dest / libs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default=DEFAULT_VERSION)
    ap.add_argument("--platform", default=platform_key(), help="e.g. linux-x86_64, macos-arm64, windows-x86_64")
    ap.add_argument("--cache-dir", type=Path, default=cache_dir())
    args = ap.parse_args()
    fetch(args.version, args.platform, args.cache_dir)


if __name__ == "__main__":
    main()
