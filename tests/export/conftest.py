"""Fixtures of the export tests: GroupLens-format files and one shared real export.

The shared export is a small synthetic dataset trained for one epoch: real training, a real
tree + AH ScaNN index tuned for a target recall, a real SavedModel verified in a fresh
process. It is built once per session (version 1 through the Python API, version 2 through
the `python -m scann_serving.export` command) and read by many tests.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _export_support import tf_env

#: Small enough to train in seconds, big enough for a tree index with several leaves.
SMALL_SYNTHETIC = {"users": 150, "items": 600, "interactions": 6_000}
SMALL_FLAGS = [
    "--synthetic-users", str(SMALL_SYNTHETIC["users"]),
    "--synthetic-items", str(SMALL_SYNTHETIC["items"]),
    "--synthetic-interactions", str(SMALL_SYNTHETIC["interactions"]),
    "--epochs", "1", "--batch-size", "1024", "--embedding-dim", "16",
    "--eval-queries", "100", "--latency-queries", "20",
]  # fmt: skip
MODEL_NAME = "retrieval"


@dataclass
class SharedExport:
    """The shared export: the base path, the API result for v1 and the CLI run for v2."""

    base: Path
    result: Any
    cli: subprocess.CompletedProcess[str]

    def manifest(self, version: int) -> dict[str, Any]:
        import json

        return json.loads(
            (self.base / str(version) / "assets.extra/scann_manifest.json").read_text()
        )


@pytest.fixture(scope="session")
def shared_export(tmp_path_factory: pytest.TempPathFactory) -> SharedExport:
    """Two versions under one base path: v1 (API; tree index tuned to recall 0.9) and
    v2 (the command; default index, which is brute force for this catalogue)."""
    from scann_serving.export import (
        DataOptions,
        ExportConfig,
        IndexOptions,
        SyntheticSpec,
        TrainingOptions,
        export_model,
    )

    base = tmp_path_factory.mktemp("exports") / MODEL_NAME
    config = ExportConfig(
        output=base,
        dataset="synthetic",
        model_name=MODEL_NAME,
        data=DataOptions(synthetic=SyntheticSpec(*SMALL_SYNTHETIC.values())),
        training=TrainingOptions(embedding_dim=16, epochs=1, batch_size=1024),
        index=IndexOptions(kind="tree"),
        target_recall=0.9,
        eval_queries=100,
        latency_queries=20,
    )
    result = export_model(config, progress=lambda message: None)
    cli = subprocess.run(
        [sys.executable, "-m", "scann_serving.export", "--dataset", "synthetic",
         "--output", str(base), "--model-name", MODEL_NAME, *SMALL_FLAGS],
        capture_output=True, text=True, env=tf_env(), timeout=300,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    return SharedExport(base=base, result=result, cli=cli)
