"""Bring your own towers: a query-tower SavedModel plus candidate embeddings and identifiers.

The query tower is any SavedModel whose signature maps one string or integer tensor (raw
query keys, or integer ids as in the KerasRS examples) to float embeddings, e.g. a Keras 3
model saved with `model.export(path)` (signature `serve`). Its signature is
wrapped (`SignatureTower`) and saved into the export, so the served model needs nothing else.
Candidates come from `.npy` (embeddings, plus identifiers in `.npy` or a text file, one per
line) or one Parquet file with an identifier column and a list-of-floats embedding column.
A Keras 3 `.keras` file or model object (`_keras_source`) gives the tower by name, and the
candidates from its `Embedding` layer plus an id -> identifier map (`_ids_map`).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from scann_serving.export._data import DataError
from scann_serving.export._options import OwnTowersOptions
from scann_serving.export._text import UTF8, decode_file, decode_values, split_lines
from scann_serving.export._towers import Towers
from scann_serving.export._types import Progress, QueryKeySpec

#: Input dtypes a query tower may take: raw string keys or integer ids.
KEY_DTYPES = ("string", "int32", "int64")


class SignatureTower(tf.Module):
    """A loaded SavedModel signature as a query tower.

    Takes what the exported `query` input carries (string `[batch]`, or int64 `[batch]` for a
    tower over integer ids) and returns float32 `[batch, dim]`. Integer ids are checked
    against `key_spec.bounds` in the graph (so TF Serving rejects them too) and cast to the
    tower's own dtype. Inputs declared as `[batch, 1]` get the extra axis added, outputs of
    shape `[batch, 1, dim]` lose it. The loaded object is tracked, so its variables are saved.
    """

    def __init__(self, path: Path, signature: str = "serving_default", output: str | None = None):
        super().__init__(name="query_tower")
        if not (path / "saved_model.pb").is_file():
            raise DataError(
                f"--query-model {path} is not a SavedModel directory (no saved_model.pb); "
                "export the query tower with model.export(PATH) or tf.saved_model.save"
            )
        self.loaded = tf.saved_model.load(str(path))
        if signature not in self.loaded.signatures:
            raise DataError(
                f"--query-model {path} has no signature {signature!r} "
                f"(has: {', '.join(self.loaded.signatures)}); pass --query-model-signature NAME"
            )
        self._fn = self.loaded.signatures[signature]
        self._input, spec = self._key_input(path, signature)
        self._rank = spec.shape.rank
        self._dtype = spec.dtype
        self._output = self._pick_output(path, output)
        self.key_spec = QueryKeySpec(tower_dtype=spec.dtype.name)
        if self.key_spec.integer:
            self.key_spec = QueryKeySpec(spec.dtype.name, *self._probe_id_range())

    def _key_input(self, path: Path, signature: str) -> tuple[str, tf.TensorSpec]:
        inputs = self._fn.structured_input_signature[1]
        if len(inputs) != 1 or next(iter(inputs.values())).dtype.name not in KEY_DTYPES:
            raise DataError(
                f"--query-model {path} signature {signature!r} must take one string or "
                f"integer (int32/int64) input (has "
                f"{ ({k: v.dtype.name for k, v in inputs.items()}) }); export a tower that "
                "maps raw query keys or ids to embeddings"
            )
        return next(iter(inputs.items()))

    def _pick_output(self, path: Path, output: str | None) -> str:
        outputs = list(self._fn.structured_outputs)
        if output is None and len(outputs) == 1:
            return outputs[0]
        if output is not None and output in outputs:
            return output
        raise DataError(
            f"--query-model {path} outputs {outputs}; pass --query-model-output with one of them"
        )

    def _accepts(self, key: int) -> bool:
        try:
            self._tower(tf.constant([key], self._dtype))
        except (tf.errors.OpError, ValueError):
            return False
        return True

    def _probe_id_range(self) -> tuple[int | None, int | None]:
        """The ids an integer tower knows, found by asking it (0..n-1 for an n-row table).

        A tower that rejects large ids (an Embedding lookup past its table, on CPU) is a
        table over 0..max_id: a binary search finds max_id in ~32 calls. A tower that
        accepts every id (hashing, modulo) has no bounds beyond its dtype's range.
        """
        high = self.key_spec.bounds[1]
        if not self._accepts(0) or self._accepts(high):
            return None, None
        good, bad = 0, high
        while bad - good > 1:
            middle = (good + bad) // 2
            good, bad = (middle, bad) if self._accepts(middle) else (good, middle)
        return 0, good

    def _tower(self, keys: tf.Tensor) -> tf.Tensor:
        keys = tf.expand_dims(keys, -1) if self._rank == 2 else keys
        out = tf.cast(self._fn(**{self._input: keys})[self._output], tf.float32)
        if out.shape.rank == 3:
            out = tf.squeeze(out, axis=1)
        return out

    def __call__(self, query: tf.Tensor) -> tf.Tensor:
        """Embeds raw query keys (string or int64 `[batch]`) -> float32 `[batch, dim]`."""
        if not self.key_spec.integer:
            return self._tower(query)
        low, high = self.key_spec.bounds
        message = (
            f"query ids must lie in {low}..{high} (the ids the query tower knows); send known ids"
        )
        checks = [
            tf.debugging.assert_greater_equal(query, tf.constant(low, query.dtype), message),
            tf.debugging.assert_less_equal(query, tf.constant(high, query.dtype), message),
        ]
        with tf.control_dependencies(checks):
            return self._tower(tf.cast(query, self._dtype))


def load_own_towers(options: OwnTowersOptions, progress: Progress | None = None) -> Towers:
    """Loads the query tower and the candidates, checking that their shapes agree.

    A Keras 3 query model (`options.keras`) is first exported into a scratch directory
    (`_keras_source`) that lives as long as the returned `Towers` (the export saves the
    tower, with its assets, from there).

    Raises:
        DataError: Missing files, wrong formats, mismatched sizes or widths, duplicates.
    """
    scratch: Path | None = None
    progress = progress or (lambda message: None)
    if options.keras:
        from scann_serving.export._keras_source import materialize

        scratch = Path(tempfile.mkdtemp(prefix="scann-export-keras-"))
        progress(
            f"  exporting the Keras query tower {options.query_submodel or '(the whole model)'} "
            "with Keras's own export, in a process on the TensorFlow backend"
        )
        try:
            keras_towers = materialize(options, scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        tower = SignatureTower(keras_towers.saved_model, keras_towers.signature)
        identifiers, embeddings, skipped = _keras_candidates(options, keras_towers.table)
        training = {"model": "own", **keras_towers.description, **_candidate_source(options)}
        if options.candidate_layer is not None:
            training["candidate_rows_skipped"] = skipped
            progress(
                f"  candidates: {len(identifiers):,} rows of {options.candidate_layer}"
                + (f", {skipped:,} rows without an identifier left out" if skipped else "")
            )
    else:
        tower = SignatureTower(options.query_model, options.signature, options.output)
        identifiers, embeddings = _load_candidates(options)
        training = {"model": "own", "query_model": str(options.query_model)}
        training |= _candidate_source(options)
    probe = tower(tf.constant(tower.key_spec.sample(1)))
    if probe.shape.rank != 2 or probe.shape[1] != embeddings.shape[1]:
        raise DataError(
            f"--query-model {options.query_model} returns shape {probe.shape.as_list()} but the "
            f"candidate embeddings are [n, {embeddings.shape[1]}]; both towers must share a width"
        )
    towers = Towers(
        query_model=tower,
        identifiers=identifiers,
        embeddings=embeddings,
        query_key=tower.key_spec,
        training=training,
    )
    if scratch is not None:
        weakref.finalize(towers, shutil.rmtree, scratch, ignore_errors=True)
    return towers


def _candidate_source(options: OwnTowersOptions) -> dict[str, Any]:
    if options.candidate_layer is None:
        return {"candidates": str(options.candidates)}
    ids_map = options.candidate_ids_map
    return {
        "candidate_layer": options.candidate_layer,
        "candidate_ids_map": None if ids_map is None else str(ids_map),
    }


def _keras_candidates(
    options: OwnTowersOptions, table: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The candidates of `--candidate-layer` (rows named by the ids map) and how many rows
    were left out, else those of `--candidates`."""
    if table is None:
        return (*_load_candidates(options), 0)
    from scann_serving.export._ids_map import every_row, read_ids_map

    ids_map = options.candidate_ids_map
    rows = every_row(len(table)) if ids_map is None else read_ids_map(ids_map, len(table))
    return rows.identifiers, rows.select(table), rows.skipped


def _load_candidates(options: OwnTowersOptions) -> tuple[np.ndarray, np.ndarray]:
    path = options.candidates
    if path is None:
        raise DataError("pass --candidates FILE, or --candidate-layer NAME of a .keras model")
    if not path.is_file():
        raise DataError(f"--candidates {path}: no such file; pass a .npy or .parquet file")
    if path.suffix == ".parquet":
        ids, emb = _from_parquet(path, options.id_column, options.embedding_column)
    elif path.suffix == ".npy":
        emb = np.load(path, allow_pickle=False)
        ids = _read_ids(options.candidate_ids, len(emb))
    else:
        raise DataError(f"--candidates {path}: expected a .npy or .parquet file")
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or len(emb) == 0:
        raise DataError(f"--candidates {path}: embeddings must be a non-empty [n, dim] array")
    if len(ids) != len(emb):
        raise DataError(
            f"{len(ids)} candidate identifiers for {len(emb)} embeddings; they must match"
        )
    if len(set(ids)) != len(ids):
        raise DataError("candidate identifiers contain duplicates; identifiers must be unique")
    return np.asarray(ids, dtype=object), emb


def _from_parquet(path: Path, id_column: str, emb_column: str) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    frame = pd.read_parquet(path)
    for flag, column in (
        ("--candidate-id-column", id_column),
        ("--candidate-embedding-column", emb_column),
    ):
        if column not in frame.columns:
            raise DataError(
                f"--candidates {path} has no column {column!r} (columns: {list(frame.columns)}); "
                f"pass {flag} NAME"
            )
    embeddings = np.stack([np.asarray(v, dtype=np.float32) for v in frame[emb_column]])
    return list(
        decode_values(frame[id_column], f"--candidates {path} column {id_column!r}")
    ), embeddings


def _read_ids(path: Path | None, n: int) -> list[str]:
    if path is None:
        raise DataError(
            "--candidates .npy needs --candidate-ids (a .npy of strings or a text file)"
        )
    if not path.is_file():
        raise DataError(f"--candidate-ids {path}: no such file")
    if path.suffix == ".npy":
        return list(decode_values(np.load(path, allow_pickle=True), f"--candidate-ids {path}"))
    fix = "save the identifiers as UTF-8 text, one per line"
    text = decode_file(path.read_bytes(), UTF8, f"--candidate-ids {path}", fix)
    return [line for line in split_lines(text) if line]
