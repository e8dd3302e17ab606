"""scann_serving.export: from interactions to a versioned, ScaNN-backed TF Serving SavedModel.

The Python API of `scann-export`::

    from scann_serving.export import ExportConfig, export_model

    result = export_model(ExportConfig(output=Path("models/retrieval"), dataset="synthetic"))
    result.version_dir, result.manifest["evaluation"]["recall_at_k"]

Importing the package does not import TensorFlow (a test holds it to that): the steps that
need it (training, the index, the SavedModel) import it when `export_model` runs, so
`scann-export --help`, the options and constants such as `MANIFEST_FILENAME` stay cheap.

Errors: `DataError` (a `--dataset` or tower input is unusable), `ValueError` (an option is
out of range), `VersionExistsError` (never overwrite), `VerificationError` (the version did
not reload identically in a fresh process; nothing was published).
"""

from __future__ import annotations

import os as _os

# TFRS needs the Keras 2 API; this must be decided before TensorFlow is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from scann_serving.export._config import ExportConfig
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
from scann_serving.export._options import OwnTowersOptions, TrainingOptions
from scann_serving.export._pipeline import ExportResult, export_model
from scann_serving.export._publish import (
    VerificationError,
    VersionExistsError,
    existing_versions,
    next_version,
)
from scann_serving.export._sources import DataOptions, load_dataset

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
