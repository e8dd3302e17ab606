#!/usr/bin/env python3
"""Size the serving pods' memory from an exported model (standard library only).

Usage: python3 docker/k8s/size_model.py MODEL_BASE_PATH_OR_VERSION_DIR

Prints the `scann-serving.io/model-memory-estimate` annotation for the Deployment (or
InferenceService) and the memory request/limit to set: two versions are resident during an
availability-preserving reload, so the limit is twice the estimate (which counts the runtime
share twice: that is the margin).

One version's resident size is estimated as the larger of
  - its SavedModel on disk (graph, variables, ScaNN index assets) x LOAD_FACTOR, and
  - the raw candidate embeddings from the manifest (num_candidates x embedding_dim x 4 B),
plus RUNTIME_BYTES for the TensorFlow runtime, gRPC/REST servers and warmup.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

MIB = 1024 * 1024
LOAD_FACTOR = 1.5  # deserialized graph + searcher structures over the serialized bytes
RUNTIME_BYTES = 512 * MIB
ROUND_TO = 256 * MIB
MANIFEST = Path("assets.extra") / "scann_manifest.json"


def version_dir(path: Path) -> Path:
    """`path` itself if it is a version directory, else its highest numeric version."""
    if (path / "saved_model.pb").is_file():
        return path
    versions = (
        [p for p in path.iterdir() if p.is_dir() and p.name.isdigit()] if path.is_dir() else []
    )
    if not versions:
        raise SystemExit(
            f"{path} has no numeric version directories (and is not one); "
            "pass a model base path written by scann-export --output, or one version in it"
        )
    return max(versions, key=lambda p: int(p.name))


def version_bytes(version: Path) -> int:
    """Resident bytes of one loaded version (see the module docstring)."""
    on_disk = sum(
        f.stat().st_size
        for f in version.rglob("*")
        if f.is_file() and "assets.extra" not in f.relative_to(version).parts
    )
    embeddings = 0
    manifest = version / MANIFEST
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        embeddings = int(meta.get("num_candidates", 0)) * int(meta.get("embedding_dim", 0)) * 4
    return max(int(on_disk * LOAD_FACTOR), embeddings) + RUNTIME_BYTES


def round_up(n: int) -> int:
    """`n` rounded up to a multiple of ROUND_TO."""
    return math.ceil(n / ROUND_TO) * ROUND_TO


def main(argv: list[str]) -> int:
    """Print the annotation and the memory request/limit for the model at argv[1]."""
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 64
    version = version_dir(Path(argv[1]))
    estimate = round_up(version_bytes(version))
    print(f"# {version}")
    print(f"scann-serving.io/model-memory-estimate: {estimate // MIB}Mi")
    print(f"resources.requests.memory: {2 * estimate // MIB}Mi")
    print(f"resources.limits.memory: {2 * estimate // MIB}Mi")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
