"""`--dataset` sources: TFDS MovieLens, GroupLens files, the user's CSV/Parquet.

`load_dataset(spec, options)` parses the spec and returns an `Interactions`; every failure
is a `DataError` whose message names the input and says what to do.
"""

from __future__ import annotations

import socket
import zipfile
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

TFDS_NAME = "movielens/100k"
TFDS_HOST = "files.grouplens.org"
DATASET_HELP = (
    "synthetic | movielens/100k | ml-100k:PATH | ml-1m:PATH | interactions:PATH(.csv|.parquet)"
)


@dataclass(frozen=True)
class DataOptions:
    """How to read the `--dataset` (columns for `interactions:`, split, synthetic size)."""

    user_column: str = "user_id"
    item_column: str = "item_id"
    test_fraction: float = DEFAULT_TEST_FRACTION
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    tfds_data_dir: str | None = None


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
    if kind in ("ml-100k", "ml-1m") and path:
        return grouplens(kind, Path(path), test_fraction=options.test_fraction)
    if kind == "interactions" and path:
        return interactions_file(Path(path), options)
    raise DataError(f"--dataset {spec!r} is not one of: {DATASET_HELP}")


# --- GroupLens ---------------------------------------------------------------------------

_GROUPLENS = {
    # kind: (ratings file, separator, items file, separator)
    "ml-100k": ("u.data", "\t", "u.item", "|"),
    "ml-1m": ("ratings.dat", "::", "movies.dat", "::"),
}


def grouplens(
    kind: str, path: Path, *, test_fraction: float = DEFAULT_TEST_FRACTION
) -> Interactions:
    """Reads GroupLens MovieLens files (folder or the .zip) into (user_id, movie title) pairs.

    Movie ids are mapped to their titles, as the TFRS tutorial identifies candidates.
    """
    ratings_name, ratings_sep, items_name, items_sep = _GROUPLENS[kind]
    files = _GroupLensFiles(kind, path)
    titles: dict[str, str] = {}
    for line_no, fields in files.rows(items_name, items_sep):
        if len(fields) < 2:
            raise DataError(
                f"{files.where(items_name)} line {line_no}: expected 'id{items_sep}title'"
            )
        titles[fields[0]] = fields[1]
    users, items = [], []
    for line_no, fields in files.rows(ratings_name, ratings_sep):
        if len(fields) < 2:
            raise DataError(
                f"{files.where(ratings_name)} line {line_no}: expected "
                f"'user{ratings_sep}item{ratings_sep}rating{ratings_sep}timestamp'"
            )
        if fields[1] not in titles:
            raise DataError(
                f"{files.where(ratings_name)} line {line_no}: movie id {fields[1]} is not in "
                f"{items_name}; use the {items_name} from the same GroupLens release"
            )
        users.append(fields[0])
        items.append(titles[fields[1]])
    return from_pairs(
        f"{kind}:{path}",
        np.asarray(users, dtype=object),
        np.asarray(items, dtype=object),
        catalogue=np.asarray(list(titles.values()), dtype=object),
        test_fraction=test_fraction,
        details={"source": kind, "path": str(path)},
    )


class _GroupLensFiles:
    """A GroupLens release as a folder or a zip; files are found by name at any depth."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        if not path.exists():
            raise DataError(
                f"--dataset {kind}:{path}: no such file or folder; download {kind}.zip from "
                f"https://{TFDS_HOST}/datasets/movielens/ and pass the zip or its folder"
            )

    def where(self, name: str) -> str:
        return f"{self.path}:{name}" if self.path.is_file() else str(self._find_in_dir(name))

    def rows(self, name: str, sep: str) -> list[tuple[int, list[str]]]:
        text = self._read(name).decode("latin-1")  # GroupLens files are ISO-8859-1.
        rows = [
            (i + 1, line.split(sep)) for i, line in enumerate(text.splitlines()) if line.strip()
        ]
        if not rows:
            raise DataError(f"{self.where(name)} is empty; use a complete {self.kind} release")
        return rows

    def _read(self, name: str) -> bytes:
        if self.path.is_dir():
            return self._find_in_dir(name).read_bytes()
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] == name]
                if not members:
                    raise self._missing(name)
                return archive.read(sorted(members, key=len)[0])
        except zipfile.BadZipFile as exc:
            raise DataError(
                f"{self.path} is not a zip file; pass the {self.kind}.zip or its folder"
            ) from exc

    def _find_in_dir(self, name: str) -> Path:
        found = sorted(self.path.rglob(name), key=lambda p: len(p.parts))
        if not found:
            raise self._missing(name)
        return found[0]

    def _missing(self, name: str) -> DataError:
        return DataError(
            f"--dataset {self.kind}:{self.path} has no {name}; a {self.kind} release "
            f"contains {' and '.join(_GROUPLENS[self.kind][::2])}"
        )


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
        frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str)
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
    return from_pairs(
        f"interactions:{path}",
        frame[options.user_column].to_numpy(),
        frame[options.item_column].to_numpy(),
        test_fraction=options.test_fraction,
        details={"source": "interactions", "path": str(path), "columns": list(columns.values())},
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
    return Interactions(
        name=TFDS_NAME,
        train_users=train[0],
        train_items=train[1],
        test_users=test[0],
        test_items=test[1],
        users=np.unique(users.astype(str)).astype(object),
        items=np.unique(catalogue.astype(str)).astype(object),
        details={"source": "tfds", "split_seed": SPLIT_SEED, "split": "80000/20000"},
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
