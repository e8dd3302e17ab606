"""Writing a version's native bundle: the SavedModel's own index and tower, for TF-free serving.

The bundle format and its reader live in the server (`scann_serving.server._bundle`), which
must load it without TensorFlow; this module turns the export's objects into it. Nothing is
trained again: the index is the pybind twin of the trained TensorFlow searcher (its tensors,
re-serialized by ScaNN itself), and a lookup tower's rows are the tower's own outputs for
every key it knows, plus the row unknown keys get. The fresh-process verification
(`_verify_native`) then proves the bundle answers like the SavedModel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._index import IndexConfig, single_band
from scann_serving.export._text import encode_utf8
from scann_serving.export._tower_tables import TowerTable, string_table, tower_vocabulary
from scann_serving.export._towers import Towers
from scann_serving.export._types import Searcher
from scann_serving.server._bundle import bundle_dir, directory_bytes, write_bundle
from scann_serving.server._native_filter import FilterSettings, exact_max_passing
from scann_serving.server._native_search import (
    TOWER_INTEGER,
    TOWER_STRING,
    QueryTable,
    SearchBand,
    SearchSettings,
)

#: A tower is tabulated only up to this size (rows x dim x 4 bytes); a bigger one
#: is served through the SavedModel (or `search_embedding` natively).
MAX_TABLE_BYTES = 2 << 30
#: Prefix of the key used to read a string lookup's out-of-vocabulary row.
_OOV_PROBE = "\x00scann-serving-unknown-key"


def search_settings(
    index_config: IndexConfig,
    k: int,
    max_k: int,
    bands: tuple[SearchBand, ...] | None = None,
) -> SearchSettings:
    """The knobs `RetrievalModule` bakes in, from the same source: `bands`, else
    `index_config`'s one pair (`single_band`)."""
    return SearchSettings(k=k, max_k=max_k, bands=bands or single_band(index_config, k))


def filter_settings(
    index_config: IndexConfig, num_candidates: int, exact: int | None = None
) -> FilterSettings:
    """What `RetrievalModule` bakes into `retrieve_filtered` besides the search knobs."""
    return FilterSettings(
        exact_max_passing=exact if exact is not None else exact_max_passing(num_candidates),
        num_leaves=0 if index_config.brute_force else index_config.num_leaves,
    )


def lookup_table(towers: Towers) -> QueryTable | None:
    """The query tower as a lookup table, or None when it is not one (see `tower_table`)."""
    return tower_table(towers).table


def tower_table(towers: Towers) -> TowerTable:
    """The query tower as a lookup table (or None), and why.

    A table: the built-in StringLookup (one OOV bucket) + Embedding tower; an own string
    tower holding lookup tables whose unknown keys all get one row (`_tower_tables`); or an
    integer tower whose known ids are bounded (`query_key.min_id..max_id`, as the Embedding
    of a KerasRS tower is): a function of one id is its outputs for every id. Rows are
    computed by the tower itself, so whatever it does per key is what the table holds.
    """
    spec = towers.query_key
    if spec.integer:
        if spec.min_id is None or spec.max_id is None:
            return TowerTable(None, "the integer query tower accepts ids without bounds")
        count = spec.max_id - spec.min_id + 1
        if count * towers.embedding_dim * 4 > MAX_TABLE_BYTES:
            return TowerTable(None, f"its table of {count:,} ids is over {MAX_TABLE_BYTES:,} bytes")
        ids = np.arange(spec.min_id, spec.max_id + 1, dtype=np.int64)
        table = QueryTable(TOWER_INTEGER, towers.embed_keys(ids), min_id=spec.min_id)
        return TowerTable(table, f"a table over ids {spec.min_id}..{spec.max_id}")
    vocabulary = _string_lookup_vocabulary(towers.query_model)
    if vocabulary is None:
        return string_table(towers, MAX_TABLE_BYTES, _own_vocabulary(towers.query_model))
    known = set(vocabulary)
    probe = next(
        f"{_OOV_PROBE}-{i}" for i in range(len(known) + 1) if f"{_OOV_PROBE}-{i}" not in known
    )
    keys = encode_utf8([*vocabulary, probe])
    rows = towers.embed_keys(keys)
    rows_of = {key: row for row, key in enumerate(keys[:-1].tolist())}
    return TowerTable(
        QueryTable(TOWER_STRING, rows, keys=rows_of, oov_row=len(vocabulary)),
        f"the built-in StringLookup + Embedding tower over {len(vocabulary):,} keys",
    )


def _own_vocabulary(model: Any) -> list[bytes] | None:
    try:
        return tower_vocabulary(model)
    except (ValueError, TypeError, AttributeError):  # an object graph we cannot walk
        return None


def _string_lookup_vocabulary(model: Any) -> list[str] | None:
    """The vocabulary of a `Sequential([StringLookup, Embedding])` with one OOV bucket."""
    layers = getattr(model, "layers", None)
    if not layers or len(layers) != 2:
        return None
    lookup, embedding = layers
    if type(lookup).__name__ != "StringLookup" or type(embedding).__name__ != "Embedding":
        return None
    if getattr(lookup, "num_oov_indices", None) != 1 or getattr(lookup, "invert", False):
        return None
    if getattr(lookup, "mask_token", None) is not None:
        return None
    return [str(v) for v in lookup.get_vocabulary(include_special_tokens=False)]


def signature_defs_bytes(saved_model_dir: Path) -> bytes:
    """The SavedModel's signatures as a serialized `tensorflow.serving.SignatureDefMap`."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    proto = saved_model_pb2.SavedModel.FromString((saved_model_dir / "saved_model.pb").read_bytes())
    defs = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in proto.meta_graphs[0].signature_def.items():
        defs.signature_def[name].CopyFrom(signature)
    return bytes(defs.SerializeToString(deterministic=True))


def write_native_bundle(
    staging: Path,
    *,
    twin: Searcher,
    identifiers: np.ndarray,
    settings: SearchSettings,
    towers: Towers,
    table: QueryTable | None,
    filtered: tuple[FilterSettings, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Writes `assets.extra/native/` into a staged version; returns the manifest's `native`.

    `filtered` (the filter's settings and the candidate embeddings) makes the bundle serve
    `retrieve_filtered` too, for a version with candidate attributes.
    """
    block = write_bundle(
        bundle_dir(staging),
        searcher=twin,
        identifiers=encode_utf8(identifiers).tolist(),
        settings=settings,
        embedding_dim=towers.embedding_dim,
        signature_defs=signature_defs_bytes(staging),
        table=table,
        filtered=filtered,
    )
    block["savedmodel_bytes"] = directory_bytes(staging) - block["bytes"]
    return block
