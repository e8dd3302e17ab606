"""The version manifest: what a version is, how it was built and how well it retrieves.

Written to `assets.extra/scann_manifest.json`; scann-serve's preflight reads the
`runtime` block to refuse a model built with another TensorFlow or ScaNN.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import platform
from collections.abc import Iterable
from typing import Any

# Where a version keeps its manifest and warmup requests: shared with the server and the
# client through the contract module (re-exported here as the export's public names).
from scann_serving.client.contract import (
    ASSETS_EXTRA as ASSETS_EXTRA,
)
from scann_serving.client.contract import (
    MANIFEST_FILENAME as MANIFEST_FILENAME,
)
from scann_serving.client.contract import (
    WARMUP_FILENAME as WARMUP_FILENAME,
)

MANIFEST_FORMAT = 1

_DISTRIBUTIONS = {
    "tensorflow": "tensorflow",
    "scann": "scann",
    "tensorflow_recommenders": "tensorflow-recommenders",
    "tf_keras": "tf-keras",
    "scann_serving_export": "scann-serving-export",
}


def runtime_versions() -> dict[str, str | None]:
    """Versions of the libraries that shape the SavedModel, from installed metadata."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in _DISTRIBUTIONS.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def fingerprint(parts: Iterable[bytes]) -> str:
    """A sha256 over the given byte strings (dataset fingerprints)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return "sha256:" + digest.hexdigest()


def build_manifest(
    *,
    model_name: str,
    k: int,
    max_k: int,
    num_candidates: int,
    embedding_dim: int,
    index: dict[str, Any],
    signatures: dict[str, Any],
    dataset: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
    tuning: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    warmup_records: int = 0,
) -> dict[str, Any]:
    """The manifest of one version; `version` and `created_at` are filled in at publish."""
    return {
        "format": MANIFEST_FORMAT,
        "model_name": model_name,
        "version": None,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "runtime": runtime_versions(),
        "k": k,
        "max_k": max_k,
        "num_candidates": num_candidates,
        "embedding_dim": embedding_dim,
        "index": index,
        "signatures": signatures,
        "dataset": dataset,
        "evaluation": evaluation or {},
        "tuning": tuning or {},
        "training": training or {},
        "warmup_records": warmup_records,
    }
