"""`--dataset` sources: TFDS MovieLens, GroupLens files, the user's CSV/Parquet.

`load_dataset(spec, options)` parses the spec and returns an `Interactions`; every failure
is a `DataError` whose message names the input and says what to do. Text is decoded here,
strictly (`_text`): CSV/TSV in `DataOptions.encoding` (UTF-8 by default), Parquet strings
as stored, binary Parquet columns as UTF-8; GroupLens files as `_grouplens` describes.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._data import (
    DEFAULT_TEST_FRACTION,
    SPLIT_SEED,
    DataError,
    Interactions,
    SyntheticSpec,
    from_pairs,
    synthetic,
)
from scann_serving.export._grouplens import RELEASES, grouplens
from scann_serving.export._text import UTF8, decode_values, read_text_table

TFDS_NAME = "movielens/100k"
TFDS_HOST = "files.grouplens.org"
DATASET_HELP = (
    "synthetic | movielens/100k | ml-100k:PATH | ml-1m:PATH | ml-20m:PATH | ml-25m:PATH | "
    "ml-32m:PATH | ml-latest:PATH | ml-latest-small:PATH | interactions:PATH(.csv|.parquet)"
)


@dataclass(frozen=True)
class DataOptions:
    """How to read the `--dataset` (columns and text encoding for `interactions:`, split,
    synthetic size)."""

    user_column: str = "user_id"
    item_column: str = "item_id"
    test_fraction: float = DEFAULT_TEST_FRACTION
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    tfds_data_dir: str | None = None
    encoding: str = UTF8


def load_dataset(spec: str, options: DataOptions | None = None) -> Interactions:
    """Loads `spec` (see `DATASET_HELP`) into train/test interactions.

    Raises:
        DataError: Unknown spec, missing file or column, empty data, offline TFDS.
    """
    options = options or DataOptions()
    kind, _, path = spec.partition(":")
    if spec == "synthetic":
        return synthetic(options.synthetic, test_fraction=options.test_fraction)
    if spec in (TFDS_NAME, "movielens/100k-ratings"):
        return movielens_tfds(options.tfds_data_dir)
    if kind in RELEASES and path:
        return grouplens(kind, Path(path), test_fraction=options.test_fraction)
    if kind == "interactions" and path:
        return interactions_file(Path(path), options)
    raise DataError(f"--dataset {spec!r} is not one of: {DATASET_HELP}")


# --- The user's own interactions -----------------------------------------------------------


def interactions_file(path: Path, options: DataOptions) -> Interactions:
    """Reads a CSV or Parquet file of (user, item) rows; column names from `options`."""
    import pandas as pd

    if not path.is_file():
        raise DataError(
            f"--dataset interactions:{path}: no such file; pass a .csv or .parquet file"
        )
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        frame = read_text_table(path, "\t" if suffix == ".tsv" else ",", options.encoding)
    else:
        raise DataError(f"--dataset interactions:{path}: expected a .csv, .tsv or .parquet file")
    columns = {"--user-column": options.user_column, "--item-column": options.item_column}
    for flag, column in columns.items():
        if column not in frame.columns:
            raise DataError(
                f"{path} has no column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
                f"pass {flag} NAME"
            )
    frame = frame[[options.user_column, options.item_column]].dropna()
    if frame.empty:
        raise DataError(f"{path} has no complete (user, item) rows; it must not be empty")
    details = {"source": "interactions", "path": str(path), "columns": list(columns.values())}
    if suffix != ".parquet":
        details["encoding"] = options.encoding
    return from_pairs(
        f"interactions:{path}",
        decode_values(frame[options.user_column], f"{path} column {options.user_column!r}"),
        decode_values(frame[options.item_column], f"{path} column {options.item_column!r}"),
        test_fraction=options.test_fraction,
        details=details,
    )


# --- TFDS, exactly as the TFRS retrieval tutorial ---------------------------------------------


def movielens_tfds(data_dir: str | None = None) -> Interactions:
    """MovieLens 100K via TFDS as the TFRS tutorial loads it: (user_id, movie_title) pairs,
    shuffled with seed 42, 80,000 train / 20,000 test; catalogue from `100k-movies`."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    names = ("movielens/100k-ratings", "movielens/100k-movies")
    builders = [tfds.builder(name, data_dir=data_dir) for name in names]
    if not all(_is_prepared(b) for b in builders) and not _reachable(TFDS_HOST):
        raise DataError(
            f"--dataset {TFDS_NAME} needs a one-time download from {TFDS_HOST}, which is "
            "unreachable (offline?). Use --dataset synthetic, or download ml-100k.zip on a "
            "connected machine and pass --dataset ml-100k:PATH/ml-100k.zip"
        )
    try:
        ratings = tfds.load(names[0], split="train", data_dir=data_dir)
        movies = tfds.load(names[1], split="train", data_dir=data_dir)
    except Exception as exc:  # TFDS raises many kinds; all mean the same to the user
        raise DataError(
            f"--dataset {TFDS_NAME}: TFDS could not load it ({exc}); "
            "use --dataset ml-100k:PATH or --dataset synthetic"
        ) from exc
    ratings = ratings.map(lambda x: {"movie_title": x["movie_title"], "user_id": x["user_id"]})
    tf.random.set_seed(42)
    shuffled = ratings.shuffle(100_000, seed=42, reshuffle_each_iteration=False)
    train = _pairs(shuffled.take(80_000))
    test = _pairs(shuffled.skip(80_000).take(20_000))
    catalogue = np.asarray(
        [t.decode() for t in tfds.as_numpy(movies.map(lambda x: x["movie_title"]))]
    )
    users = np.concatenate([train[0], test[0]])
    from scann_serving.export._attributes import grouplens_attributes

    items = np.unique(catalogue.astype(str)).astype(object)
    return Interactions(
        name=TFDS_NAME,
        train_users=train[0],
        train_items=train[1],
        test_users=test[0],
        test_items=test[1],
        users=np.unique(users.astype(str)).astype(object),
        items=items,
        details={"source": "tfds", "split_seed": SPLIT_SEED, "split": "80000/20000"},
        attributes=grouplens_attributes(items, None, source="tfds"),
    )


def _pairs(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    rows = list(tfds.as_numpy(dataset))
    users = np.asarray([r["user_id"].decode() for r in rows], dtype=object)
    items = np.asarray([r["movie_title"].decode() for r in rows], dtype=object)
    return users, items


def _is_prepared(builder: Any) -> bool:
    try:
        return bool(builder.is_prepared())
    except Exception:
        return False


def _reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
