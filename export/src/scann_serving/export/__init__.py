"""scann_serving.export: from interactions to a versioned, ScaNN-backed TF Serving SavedModel.

The Python API of `scann-export`::

    from scann_serving.export import ExportConfig, export_model

    result = export_model(ExportConfig(output=Path("models/retrieval"), dataset="synthetic"))
    result.version_dir, result.manifest["evaluation"]["recall_at_k"]

Names that need TensorFlow (the pipeline, towers, data sources) are imported on first use,
so reading constants such as `MANIFEST_FILENAME` stays cheap.

Errors: `DataError` (a `--dataset` or tower input is unusable), `ValueError` (an option is
out of range), `VersionExistsError` (never overwrite), `VerificationError` (the version did
not reload identically in a fresh process; nothing was published).
"""

from __future__ import annotations

import importlib
import os as _os
from typing import Any

# TFRS needs the Keras 2 API; this must be decided before TensorFlow is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from scann_serving.export._data import DataError, Interactions, SyntheticSpec
from scann_serving.export._index import (
    IndexConfig,
    IndexOptions,
    default_config,
    tree_config,
)
from scann_serving.export._manifest import (
    ASSETS_EXTRA,
    MANIFEST_FILENAME,
    WARMUP_FILENAME,
)
from scann_serving.export._publish import (
    VersionExistsError,
    existing_versions,
    next_version,
)

_LAZY = {
    "ExportConfig": "_pipeline",
    "ExportResult": "_pipeline",
    "export_model": "_pipeline",
    "DataOptions": "_sources",
    "load_dataset": "_sources",
    "TrainingOptions": "_options",
    "OwnTowersOptions": "_options",
    "VerificationError": "_verify",
}

__all__ = [
    "ASSETS_EXTRA",
    "MANIFEST_FILENAME",
    "WARMUP_FILENAME",
    "DataError",
    "DataOptions",
    "ExportConfig",
    "ExportResult",
    "IndexConfig",
    "IndexOptions",
    "Interactions",
    "OwnTowersOptions",
    "SyntheticSpec",
    "TrainingOptions",
    "VerificationError",
    "VersionExistsError",
    "default_config",
    "existing_versions",
    "export_model",
    "load_dataset",
    "next_version",
    "tree_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"scann_serving.export.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'scann_serving.export' has no attribute {name!r}")
