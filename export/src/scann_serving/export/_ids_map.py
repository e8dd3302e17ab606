"""`--candidate-ids-map`: which row of a candidate `Embedding` table is which candidate.

A KerasRS model looks candidates up by integer id: row `i` of its candidate `Embedding` is
the embedding of id `i`. The map says what to serve for each id, e.g. a movie title. It is
a text file of `id<TAB>identifier` lines (`.tsv`, `.txt`, any other suffix) or a CSV file
whose first two columns are the id and the identifier (`.csv`, e.g. GroupLens's
`movies.csv`: `movieId,title,genres`). A first row whose id is not an integer is a header.

Rows of the table that no line names are not candidates: the KerasRS example makes its
tables larger than its ids (`movies_count + 1000` rows, row 0 unused), and those rows were
never trained. Without a map every row is a candidate, identified by its decimal id.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scann_serving.export._data import DataError
from scann_serving.export._text import UTF8, decode_file

FLAG = "--candidate-ids-map"
SHOWN = 5  # offending values an error message names


@dataclass(frozen=True)
class CandidateRows:
    """The candidate rows of an embedding table and their identifiers.

    Attributes:
        rows: Table rows that are candidates, int64 `[n]`, in the map's order.
        identifiers: Their identifiers, str `[n]` (object array).
        skipped: Table rows without an identifier (not exported).
    """

    rows: np.ndarray
    identifiers: np.ndarray
    skipped: int

    def select(self, table: np.ndarray) -> np.ndarray:
        """The candidate embeddings, float32 `[n, dim]`, row-aligned with `identifiers`."""
        return np.ascontiguousarray(table[self.rows], dtype=np.float32)


def every_row(num_rows: int) -> CandidateRows:
    """Every row a candidate, identified by its id (no map given)."""
    rows = np.arange(num_rows, dtype=np.int64)
    return CandidateRows(rows, np.asarray([str(i) for i in rows], dtype=object), 0)


def read_ids_map(path: Path, num_rows: int) -> CandidateRows:
    """Reads `path` (see the module docstring) for a table of `num_rows` rows.

    Raises:
        DataError: Missing or undecodable file, a line without two fields, an id that is
            not an integer or not a row of the table, a repeated id or identifier.
    """
    if not path.is_file():
        raise DataError(f"{FLAG} {path}: no such file; pass a id<TAB>identifier or CSV file")
    fix = "save it as UTF-8 text"
    text = decode_file(path.read_bytes(), UTF8, f"{FLAG} {path}", fix)
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    rows: list[int] = []
    names: list[str] = []
    seen: dict[int, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for fields in reader:
        line = reader.line_num
        if not fields or fields == [""]:
            continue
        key = _parse_id(path, line, fields, delimiter, header_allowed=not rows)
        if key is None:
            continue
        if not 0 <= key < num_rows:
            raise DataError(
                f"{FLAG} {path} line {line}: id {key} is not a row of the candidate table "
                f"(ids 0..{num_rows - 1}); map only ids the model's Embedding knows"
            )
        if key in seen:
            raise DataError(
                f"{FLAG} {path} line {line}: id {key} is mapped twice (first on line "
                f"{seen[key]}); give each id one identifier"
            )
        seen[key] = line
        rows.append(key)
        names.append(fields[1])
    if not rows:
        raise DataError(f"{FLAG} {path} maps no ids; it needs id{delimiter}identifier lines")
    _check_unique(path, rows, names)
    return CandidateRows(
        np.asarray(rows, dtype=np.int64), np.asarray(names, dtype=object), num_rows - len(rows)
    )


def _parse_id(
    path: Path, line: int, fields: list[str], delimiter: str, *, header_allowed: bool
) -> int | None:
    """The id of one line, or None for a header line (before any id)."""
    shape = "id,identifier" if delimiter == "," else "id<TAB>identifier"
    try:
        key = int(fields[0].strip())
    except ValueError:
        if header_allowed and line == 1:
            return None
        raise DataError(
            f"{FLAG} {path} line {line}: id {fields[0]!r} is not an integer; lines are {shape}"
        ) from None
    if len(fields) < 2 or not fields[1]:
        raise DataError(
            f"{FLAG} {path} line {line}: no identifier after id {key}; lines are {shape}"
        )
    return key


def _check_unique(path: Path, rows: list[int], names: list[str]) -> None:
    first: dict[str, int] = {}
    repeated: list[str] = []
    for key, name in zip(rows, names, strict=True):
        if name in first:
            repeated.append(f"{name!r} (ids {first[name]} and {key})")
        else:
            first[name] = key
    if repeated:
        raise DataError(
            f"{FLAG} {path}: {len(repeated)} identifiers are used by more than one id, e.g. "
            f"{'; '.join(repeated[:SHOWN])}; served identifiers must be unique, so make them "
            "distinct (e.g. add the id: 'Title (1997) #1234')"
        )
