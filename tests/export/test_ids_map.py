"""`--candidate-ids-map`: the id -> identifier map of a candidate Embedding table (no TF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scann_serving.export import DataError
from scann_serving.export._ids_map import every_row, read_ids_map


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_a_tsv_map_with_a_header_names_its_rows_and_skips_the_rest(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "movies.tsv", "movie_id\ttitle\n3\tAmélie (2001)\n1\t千と千尋の神隠し\n"
    )
    rows = read_ids_map(path, 6)
    assert rows.rows.tolist() == [3, 1]
    assert rows.identifiers.tolist() == ["Amélie (2001)", "千と千尋の神隠し"]
    assert rows.skipped == 4
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert rows.select(table).tolist() == [[6.0, 7.0], [2.0, 3.0]]


def test_a_csv_map_reads_the_first_two_columns_with_quoting(tmp_path: Path) -> None:
    # GroupLens movies.csv: movieId,title,genres, titles with commas are quoted.
    text = (
        "movieId,title,genres\n"
        '1,"American President, The (1995)",Comedy|Drama\n'
        "2,Léon (1994),Action\n"
    )
    rows = read_ids_map(_write(tmp_path / "movies.csv", text), 3)
    assert rows.identifiers.tolist() == ["American President, The (1995)", "Léon (1994)"]
    assert rows.rows.tolist() == [1, 2] and rows.skipped == 1


def test_without_a_map_every_row_is_named_by_its_id() -> None:
    rows = every_row(3)
    assert rows.identifiers.tolist() == ["0", "1", "2"] and rows.skipped == 0


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1\ta\n9\tb\n", ["line 2", "id 9", "ids 0..4"]),
        ("1\ta\nx\tb\n", ["line 2", "'x' is not an integer", "id<TAB>identifier"]),
        ("1\ta\n1\tb\n", ["line 2", "id 1 is mapped twice", "line 1"]),
        ("1\ta\n2\n", ["line 2", "no identifier after id 2"]),
        ("1\tsame\n2\tsame\n", ["'same' (ids 1 and 2)", "must be unique"]),
        ("id\ttitle\n", ["maps no ids"]),
    ],
)
def test_a_bad_map_names_the_line_and_the_fix(tmp_path: Path, text: str, words: list[str]) -> None:
    path = _write(tmp_path / "map.tsv", text)
    with pytest.raises(DataError) as caught:
        read_ids_map(path, 5)
    for word in words:
        assert word in str(caught.value)
    assert "--candidate-ids-map" in str(caught.value)


def test_a_missing_or_undecodable_map_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_ids_map(tmp_path / "absent.tsv", 5)
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes("1\tAmélie\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.tsv"):
        read_ids_map(latin1, 5)
