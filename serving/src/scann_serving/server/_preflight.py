"""Preflight: read a version's manifest and refuse one built with another TF/ScaNN.

ScaNN's ops are C++ kernels registered by the installed `scann` wheel against the
installed TensorFlow; a SavedModel built with other versions can fail to load with
"Op type not registered" or, worse, load and misbehave. The manifest written by
scann-export records both versions, so the server checks them before loading.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

from scann_serving.client.contract import MANIFEST_PATH, WARMUP_PATH

MANIFEST_RELPATH = Path(MANIFEST_PATH)
WARMUP_RELPATH = Path(WARMUP_PATH)


class PreflightError(Exception):
    """The version must not be loaded; the message says why and what to do."""


def installed_versions() -> dict[str, str | None]:
    """The TensorFlow and ScaNN versions this server runs."""
    out: dict[str, str | None] = {}
    for key in ("tensorflow", "scann"):
        try:
            out[key] = importlib.metadata.version(key)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out


def read_manifest(version_dir: Path) -> dict[str, Any] | None:
    """The version's manifest, None when it has none; `PreflightError` if it is unreadable."""
    path = version_dir / MANIFEST_RELPATH
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PreflightError(
            f"manifest {path} is unreadable ({exc}); re-export the version"
        ) from exc
    if not isinstance(manifest, dict):
        raise PreflightError(f"manifest {path} is not a JSON object; re-export the version")
    return manifest


def _compatible(key: str, built: str, running: str) -> bool:
    if key == "tensorflow":  # op kernels are ABI-stable within a minor release
        return built.split(".")[:2] == running.split(".")[:2]
    return built == running


def check_runtime(manifest: dict[str, Any] | None, version_dir: Path) -> None:
    """Raises `PreflightError` when the manifest's TF/ScaNN differ from the server's."""
    if manifest is None:
        return
    built = manifest.get("runtime") or {}
    running = installed_versions()
    mismatches = [
        f"{key} {built[key]} (server has {running[key]})"
        for key in ("tensorflow", "scann")
        if built.get(key) and running[key] and not _compatible(key, built[key], str(running[key]))
    ]
    if mismatches:
        raise PreflightError(
            f"{version_dir} was built with " + " and ".join(mismatches) + "; re-export it with "
            f"tensorflow {running['tensorflow']} and scann {running['scann']}, or serve it with a "
            "scann-serve built on the versions it was exported with"
        )
