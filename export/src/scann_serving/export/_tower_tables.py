"""Recognising a string query tower that is a lookup table, whatever built it.

The built-in tower is recognised by its layers (`_native`); an own tower arrives as a
loaded SavedModel (a Keras `model.export`, `tf.saved_model.save`), whose layers are gone.
What remains are its lookup tables: restored resources that `LookupTableExportV2` can
list. Their string keys are the vocabulary. Holding a vocabulary does not make a tower a
table, so the tower is asked too: every key outside the vocabulary (random, non-ASCII,
variants of known keys in other case or with spaces) must get one and the same row, the
lookup's single out-of-vocabulary row. A hashed OOV with several buckets, or a tower that
reads the key's characters beyond the lookup, gives several rows and is not a table; the
export then writes a `search_embedding`-only bundle, as for any other tower. Nothing here
fails an export: the fresh-process verification (`_verify_native`) is what proves a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from scann_serving.server._native_search import TOWER_STRING, QueryTable

#: Keys no vocabulary is expected to hold; any that one does hold is skipped.
FIXED_PROBES = (
    "",
    " ",
    "\x00scann-serving-unknown-key",
    "zq-unknown-7f3a",
    "UNKNOWN",
    "\u00e9t\u00e9 \u00fcber na\u00efve",
    "\u7528\u6237-\u672a\u77e5",
    "\U0001f600\U0001f680",
    "\u0645\u0641\u062a\u0627\u062d",
    "x" * 300,
    "0",
    "-1",
)
#: How many vocabulary keys lend variants (other case, surrounding spaces, cut short) to
#: the probes: a tower that normalises keys before the lookup maps those to known rows.
VARIANT_SOURCES = 32
#: The empty key: Keras's `mask_token=""` gives it its own row (the mask row), a fixed
#: row for one fixed key, which the table can hold as an explicit key.
EMPTY = b""


@dataclass(frozen=True)
class TowerTable:
    """What a tower is as a table: the table, or None and why not.

    Attributes:
        table: The vocabulary, the rows and the OOV row, or None.
        reason: Why the tower is (or is not) a table, for the manifest and the summary.
    """

    table: QueryTable | None
    reason: str


def tower_vocabulary(model: Any) -> list[bytes] | None:
    """The string keys of every lookup table `model` holds, in the tables' value order.

    Walks the objects `model` tracks (a loaded SavedModel's restored resources included)
    and lists each string-keyed table with `LookupTableExportV2`. None when there is none.
    """
    found: dict[bytes, int] = {}
    tables = 0
    for obj in tf.train.TrackableView(model).descendants():
        handle = _table_handle(obj)
        if handle is None:
            continue
        exported = _export_string_keys(handle)
        if exported is None:
            continue
        tables += 1
        keys, values = exported
        for key, value in sorted(zip(keys, values, strict=True), key=lambda kv: kv[1]):
            found.setdefault(key, value)
    return list(found) if tables else None


def _table_handle(obj: Any) -> Any:
    if isinstance(obj, tf.Variable):
        return None
    try:
        return getattr(obj, "resource_handle", None)
    except (tf.errors.OpError, ValueError, TypeError, AttributeError):
        return None  # a resource that cannot be created here is not a table we can read


def _export_string_keys(handle: Any) -> tuple[list[bytes], list[int]] | None:
    # The handle does not say the table's dtypes; a string -> integer table (what
    # StringLookup and tf.lookup build) exports with one of these two.
    for values in (tf.int64, tf.int32):
        try:
            keys, rows = tf.raw_ops.LookupTableExportV2(
                table_handle=handle, Tkeys=tf.string, Tvalues=values
            )
        except (tf.errors.OpError, ValueError, TypeError):
            continue
        return [bytes(k) for k in keys.numpy().tolist()], [int(v) for v in rows.numpy()]
    return None


def unknown_probes(vocabulary: list[bytes]) -> list[bytes]:
    """Keys outside `vocabulary` that a single-OOV lookup maps to one row: fixed ones and
    variants (upper/lower case, spaces around, one character short or long) of known keys."""
    known = set(vocabulary)
    step = max(1, len(vocabulary) // VARIANT_SOURCES)
    variants: list[str] = []
    for raw in vocabulary[::step][:VARIANT_SOURCES]:
        key = raw.decode("utf-8", "replace")
        variants += [key.upper(), key.lower(), key.swapcase(), f" {key}", f"{key} ", key[:-1]]
        variants.append(f"{key}\u00e9")
    probes = dict.fromkeys(p.encode() for p in [*FIXED_PROBES, *variants])
    return [p for p in probes if p not in known]


def string_table(towers: Any, max_bytes: int, vocabulary: list[bytes] | None) -> TowerTable:
    """The tower as a string table over `vocabulary`, checked by asking the tower.

    Args:
        towers: The export's `Towers` (its `embed_keys` runs the tower).
        max_bytes: The largest table (rows x dim x 4 bytes) worth writing.
        vocabulary: The keys the tower's lookup knows (`tower_vocabulary`), or None.
    """
    if not vocabulary:
        return TowerTable(None, "the query tower holds no string lookup table")
    probes = unknown_probes(vocabulary)
    size = (len(vocabulary) + 2) * towers.embedding_dim * 4
    if size > max_bytes:
        return TowerTable(None, f"its table would take {size:,} bytes (over {max_bytes:,})")
    keys = np.empty(len(vocabulary) + len(probes), dtype=object)
    keys[:] = [*vocabulary, *probes]
    try:
        rows = towers.embed_keys(keys)
    except (tf.errors.OpError, ValueError, TypeError) as exc:
        return TowerTable(None, f"the query tower fails on unknown keys ({type(exc).__name__})")
    known, unknown = rows[: len(vocabulary)], rows[len(vocabulary) :]
    extra = _empty_key_row(probes, unknown)
    others = [i for i, probe in enumerate(probes) if not (extra is not None and probe == EMPTY)]
    distinct = _distinct_rows(unknown[others])
    if distinct > 1:
        return TowerTable(
            None,
            f"unknown keys get {distinct} different embeddings (a hashed OOV with several "
            "buckets, or a tower that reads the key beyond the lookup)",
        )
    table_keys = {key: row for row, key in enumerate(vocabulary)}
    table_rows = [known, unknown[others[0] : others[0] + 1]]
    if extra is not None:
        table_keys[EMPTY] = len(vocabulary) + 1
        table_rows.append(extra[None, :])
    table = QueryTable(
        TOWER_STRING, np.concatenate(table_rows), keys=table_keys, oov_row=len(vocabulary)
    )
    mask = " (and the empty key's own row, a mask token)" if extra is not None else ""
    return TowerTable(
        table, f"a lookup over {len(vocabulary):,} keys with one out-of-vocabulary row{mask}"
    )


def _empty_key_row(probes: list[bytes], unknown: np.ndarray) -> np.ndarray | None:
    """The empty key's row when it differs from every other unknown key's (a mask row)."""
    if EMPTY not in probes:
        return None
    at = probes.index(EMPTY)
    rest = np.delete(unknown, at, axis=0)
    if len(rest) == 0 or _same(unknown[at], rest[0]):
        return None
    return np.asarray(unknown[at])


def _distinct_rows(rows: np.ndarray) -> int:
    kept: list[np.ndarray] = []
    for row in rows:
        if not any(_same(row, other) for other in kept):
            kept.append(row)
    return len(kept)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    # One lookup row run through the same ops: equal up to float rounding between batches.
    scale = max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
    return bool(np.allclose(a, b, rtol=0.0, atol=1e-6 * scale, equal_nan=True))
