"""Finding the query tower and the candidate table inside a Keras 3 model.

Used twice: in the caller's process for a model object (any Keras backend), and in the
TensorFlow-backend worker (`_keras_worker`) for a `.keras` file. A name is an attribute of
the model (`user_embedding` in the KerasRS example) or the name of one of its layers. A
`.keras` file whose custom classes cannot be imported here is read as weights only
(`saved_tables`): its embedding tables by the names the file stores them under.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
from scann_serving.export._data import DataError

QUERY_FLAG = "--query-submodel"
CANDIDATE_FLAG = "--candidate-layer"
#: Input dtypes of a query tower (raw string keys or integer ids), as `_own_towers` takes.
TOWER_DTYPES = ("string", "int32", "int64")


def named_items(model: Any) -> dict[str, Any]:
    """The model's attributes that hold layers, then every nested layer by its name."""
    items: dict[str, Any] = {}
    for attribute in sorted(vars(model)):
        value = getattr(model, attribute, None)
        if not attribute.startswith("_") and isinstance(value, keras.layers.Layer):
            items[attribute] = value
    for layer in model._flatten_layers(include_self=False, recursive=True):
        items.setdefault(layer.name, layer)
    return items


def find_item(model: Any, name: str, flag: str, source: str) -> Any:
    """The layer or sub-model `name` of `model`; a `DataError` lists the names there are."""
    items = named_items(model)
    if name in items:
        return items[name]
    listing = ", ".join(f"{n} ({type(v).__name__})" for n, v in items.items()) or "none"
    raise DataError(
        f"{flag} {name!r}: {source} has no layer or sub-model of that name; it has: {listing}"
    )


def as_tower(item: Any, name: str, source: str) -> Any:
    """A Keras model with one input over `item`: a sub-model as it is, an `Embedding` layer
    over int32 ids `[batch]` (the KerasRS towers)."""
    if isinstance(item, keras.Model) and _has_inputs(item):
        check_tower_input(item, name, source)
        return item
    if isinstance(item, keras.layers.Embedding):
        ids = keras.Input(shape=(), dtype="int32", name="query_id")
        return keras.Model(ids, item(ids), name=f"{name}_tower")
    raise DataError(
        f"{QUERY_FLAG} {name!r} of {source} is a {type(item).__name__} without a known input; "
        "name an Embedding layer or a sub-model built on keras.Input (e.g. a keras.Sequential "
        "that starts with keras.Input(shape=(), dtype='int32'))"
    )


def _has_inputs(model: Any) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def check_tower_input(tower: Any, name: str, source: str) -> None:
    """Raises a `DataError` unless the tower takes one string or integer `[batch]` input."""
    inputs = tower.inputs
    dtypes = [str(getattr(t.dtype, "name", t.dtype)) for t in inputs]
    shapes = [tuple(t.shape) for t in inputs]
    if len(inputs) == 1 and dtypes[0] in TOWER_DTYPES and shapes[0] in ((None,), (None, 1)):
        return
    got = ", ".join(f"{d} {list(s)}" for d, s in zip(dtypes, shapes, strict=True))
    raise DataError(
        f"{QUERY_FLAG} {name!r} of {source} takes {got}; a query tower takes one string or "
        "integer input of shape [batch] (or [batch, 1]): the raw query key or id"
    )


def embedding_table(item: Any, name: str, source: str) -> np.ndarray:
    """The rows of an `Embedding` layer, float32 `[num_ids, dim]` (row i is id i)."""
    if not isinstance(item, keras.layers.Embedding):
        raise DataError(
            f"{CANDIDATE_FLAG} {name!r} of {source} is a layer of type {type(item).__name__}, "
            "not Embedding; name the candidate Embedding, or pass --candidates FILE"
        )
    table = getattr(item, "embeddings", None)
    if table is None:
        raise DataError(
            f"{CANDIDATE_FLAG} {name!r} of {source} has no weights yet (never built); "
            "train the model, or build it (model.build) before exporting"
        )
    return np.asarray(keras.ops.convert_to_numpy(table), dtype=np.float32)


def saved_tables(path: Path) -> dict[str, np.ndarray]:
    """The 2-D weights of a `.keras` file by the path it saves them under (`layers/` parts
    dropped): the `Embedding` tables of a model whose classes are not importable."""
    import h5py

    tables: dict[str, np.ndarray] = {}

    def visit(group_path: str, node: Any) -> None:
        parts = group_path.split("/")
        if parts[0] == "optimizer" or parts[-2:] != ["vars", "0"] or node.ndim != 2:
            return
        name = "/".join(p for p in parts[:-2] if p != "layers")
        if name:
            tables.setdefault(name, np.asarray(node, dtype=np.float32))

    try:
        with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw:
            h5py.File(raw, "r").visititems(visit)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(
            f"--query-model {path} is not a Keras 3 .keras archive ({exc}); save the model "
            "with model.save('NAME.keras'), or pass a SavedModel directory"
        ) from exc
    return tables


def table_item(tables: dict[str, np.ndarray], name: str, flag: str, source: str) -> np.ndarray:
    """One of `saved_tables`; a `DataError` lists them and how to load the whole model."""
    if name in tables:
        return tables[name]
    listing = ", ".join(f"{n} {list(t.shape)}" for n, t in tables.items()) or "none"
    raise DataError(
        f"{flag} {name!r}: {source}'s classes are not importable here, so only its weights "
        f"were read; its embedding tables are: {listing}. Pass one of these names, or "
        "--keras-module MODULE that defines (and registers) the model's classes"
    )


def table_tower(table: np.ndarray, name: str) -> Any:
    """An int32 id -> row tower over a saved `Embedding` table."""
    ids = keras.Input(shape=(), dtype="int32", name="query_id")
    layer = keras.layers.Embedding(table.shape[0], table.shape[1], name=name.replace("/", "_"))
    tower = keras.Model(ids, layer(ids), name="query_tower")
    layer.set_weights([table])
    return tower
