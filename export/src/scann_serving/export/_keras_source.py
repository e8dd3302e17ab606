"""Keras 3 towers given directly: a `.keras` file or a model object, plus names inside it.

The query tower (`query_submodel`: an `Embedding` layer or a sub-model) is written with
Keras's own export into a scratch directory by `_keras_worker`, in a process on the
TensorFlow backend, and then loaded like any `--query-model` SavedModel. The candidate
table (`candidate_layer`, an `Embedding`) comes back as an array; `_ids_map` says which of
its rows are candidates and what they are called.

A model object is read in the caller's process (any backend): its tower is saved as a
small `.keras` file of built-in layers, which the worker exports like a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._data import DataError
from scann_serving.export._keras_worker import RESULT_FILENAME, TABLE_FILENAME, TOWER_DIRNAME
from scann_serving.export._options import OwnTowersOptions

KERAS_SUFFIX = ".keras"
STDERR_TAIL = 3000


@dataclass(frozen=True)
class KerasTowers:
    """What the worker wrote: the query tower as a SavedModel, the candidate table."""

    saved_model: Path
    signature: str
    table: np.ndarray | None
    description: dict[str, Any]


def materialize(options: OwnTowersOptions, scratch: Path) -> KerasTowers:
    """Exports the query tower of `options.query_model` (a `.keras` file or a Keras model
    object) into `scratch` and reads its candidate table.

    Raises:
        DataError: Missing file, no such layer (the message lists the names there are),
            a tower input that is not one string or integer `[batch]` tensor.
    """
    request: dict[str, Any] = {
        "out": str(scratch),
        "query_submodel": options.query_submodel,
        "candidate_layer": options.candidate_layer,
        "modules": list(options.keras_modules),
    }
    table = None
    if isinstance(options.query_model, Path):
        path = options.query_model
        if not path.is_file():
            raise DataError(
                f"--query-model {path}: no such file; pass the .keras file the model was "
                "saved to with model.save(PATH)"
            )
        request |= {"source": str(path.resolve()), "label": str(path)}
        described = str(path)
    else:
        request, table = _from_object(options, scratch, request)
        described = f"<{type(options.query_model).__name__} object>"
    result = _run_worker(request, scratch)
    if table is None and options.candidate_layer is not None:
        table = np.load(scratch / TABLE_FILENAME)
    description = {
        "query_model": described,
        "query_submodel": options.query_submodel,
        "keras": result.get("loaded"),
    }
    return KerasTowers(scratch / TOWER_DIRNAME, "serve", table, description)


def _from_object(
    options: OwnTowersOptions, scratch: Path, request: dict[str, Any]
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Finds the tower and table in a model object here, and saves the tower for the worker."""
    from scann_serving.export import _keras_models as km

    model, label = options.query_model, "the Keras model"
    name = options.query_submodel
    item = model if name is None else km.find_item(model, name, km.QUERY_FLAG, label)
    tower = km.as_tower(item, name or "", label)
    table = None
    if options.candidate_layer is not None:
        found = km.find_item(model, options.candidate_layer, km.CANDIDATE_FLAG, label)
        table = km.embedding_table(found, options.candidate_layer, label)
    path = scratch / "query_tower.keras"
    tower.save(str(path))
    return request | {
        "source": str(path),
        "label": label,
        "query_submodel": None,
        "candidate_layer": None,
    }, table


def _run_worker(request: dict[str, Any], scratch: Path) -> dict[str, Any]:
    request_path = scratch / "request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("TF_USE_LEGACY_KERAS", None)  # the worker is Keras 3 only
    done = subprocess.run(
        [sys.executable, "-m", "scann_serving.export._keras_worker", str(request_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    result_path = scratch / RESULT_FILENAME
    result: dict[str, Any] = (
        json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else {}
    )
    if "error" in result:
        raise DataError(result["error"])
    if done.returncode != 0:
        raise DataError(
            f"--query-model {request['label']}: Keras could not export its query tower "
            f"(exit status {done.returncode}):\n{done.stderr[-STDERR_TAIL:]}"
        )
    return result
