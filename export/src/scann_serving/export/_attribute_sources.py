"""Reading candidate attributes: the user's file and GroupLens's movie lines.

`--candidate-attributes PATH` is a CSV, TSV or Parquet table: the identifier column plus
attribute columns. A numeric column (every non-empty cell a number) is a numeric
attribute; any other column is a token namespace whose cells hold one value, several
separated by '|', or (Parquet) a list. Text is decoded strictly as UTF-8 (`_text`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._attributes import CandidateAttributes
from scann_serving.export._data import DataError
from scann_serving.export._text import UTF8, decode_value, read_text_table

#: Separates the values of a multi-valued text cell: "Action|Comedy".
MULTI_VALUE_SEPARATOR = "|"
#: ml-100k's genre flag columns, in u.item order (u.genre lists the same).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_YEAR_IN_DATE = re.compile(r"(\d{4})\s*$")


def read_attribute_file(path: Path, id_column: str) -> CandidateAttributes:
    """Reads `--candidate-attributes PATH` (.csv, .tsv or .parquet).

    Raises:
        DataError: Missing file or id column, duplicate identifiers, undecodable text.
    """
    import pandas as pd

    flag = f"--candidate-attributes {path}"
    if not path.is_file():
        raise DataError(f"{flag}: no such file; pass a .csv, .tsv or .parquet table")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        frame = read_text_table(path, "\t" if suffix == ".tsv" else ",", UTF8)
    else:
        raise DataError(f"{flag}: expected a .csv, .tsv or .parquet file")
    if id_column not in frame.columns:
        raise DataError(
            f"{path} has no column {id_column!r} (columns: {', '.join(map(str, frame.columns))}); "
            "pass --candidate-id-column NAME"
        )
    ids = [
        decode_value(v, f"{path} column {id_column!r} row {r}")
        for r, v in enumerate(frame[id_column], 1)
    ]
    seen: set[str] = set()
    for row, identifier in enumerate(ids, 1):
        if identifier in seen:
            raise DataError(
                f"{path} row {row}: identifier {identifier!r} appears twice; list each candidate once"
            )
        seen.add(identifier)
    tokens: dict[str, list[tuple[str, ...]]] = {}
    numeric: dict[str, np.ndarray] = {}
    for column in frame.columns:
        if column == id_column:
            continue
        name, cells = str(column), frame[column]
        values = _numeric(cells)
        if values is not None:
            numeric[name] = values
        else:
            tokens[name] = [
                _cell_tokens(v, f"{path} column {name!r} row {r}") for r, v in enumerate(cells, 1)
            ]
    try:
        return CandidateAttributes(
            np.asarray(ids, dtype=object), tokens, numeric, source=f"file:{path}"
        )
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None


def _numeric(cells: Any) -> np.ndarray | None:
    """The column as float64 (NaN for empty cells), or None when it is not numeric."""
    import pandas as pd

    if cells.dtype.kind in "iuf":
        return cells.to_numpy(dtype=np.float64)
    if (
        cells.dtype.kind == "b"
        or cells.map(lambda v: isinstance(v, list | tuple | np.ndarray)).any()
    ):
        return None
    present = cells.dropna()
    present = present[present.astype(str).str.strip() != ""]
    if present.empty:
        return None
    parsed = pd.to_numeric(present, errors="coerce")
    if parsed.isna().any() or not np.isfinite(parsed.to_numpy(dtype=np.float64)).all():
        return None
    out = np.full(len(cells), np.nan)
    out[cells.index.get_indexer(present.index)] = parsed.to_numpy(dtype=np.float64)
    return out


def _cell_tokens(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, list | tuple | np.ndarray):
        items = [decode_value(v, where) for v in value if v is not None]
    elif value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    else:
        items = decode_value(value, where).split(MULTI_VALUE_SEPARATOR)
    return tuple(dict.fromkeys(v.strip() for v in items if v.strip()))


def ml100k_movie_attributes(fields: Sequence[str]) -> tuple[tuple[str, ...], float]:
    """(genres, release year) from one '|'-split line of ml-100k's u.item."""
    flags = fields[-len(ML100K_GENRES) :] if len(fields) >= 5 + len(ML100K_GENRES) else []
    genres = tuple(g for g, f in zip(ML100K_GENRES, flags, strict=False) if f.strip() == "1")
    date = fields[2] if len(fields) > 2 else ""
    match = _YEAR_IN_DATE.search(date)
    return genres, float(match.group(1)) if match else float("nan")


def split_genres(text: str) -> tuple[str, ...]:
    """ml-1m / CSV genres ("Animation|Children's"); "(no genres listed)" is none."""
    return tuple(g for g in text.split(MULTI_VALUE_SEPARATOR) if g and not g.startswith("("))
