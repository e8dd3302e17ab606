"""scann_serving.export: from interactions to a versioned, ScaNN-backed TF Serving SavedModel."""

from __future__ import annotations

import os as _os

# TFRS needs the Keras 2 API; this must be decided before TensorFlow is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from scann_serving.export._index import IndexConfig, default_config
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

__all__ = [
    "ASSETS_EXTRA",
    "MANIFEST_FILENAME",
    "WARMUP_FILENAME",
    "IndexConfig",
    "VersionExistsError",
    "default_config",
    "existing_versions",
    "next_version",
]
