"""Candidate attributes: reading them, aligning them with the catalogue, the filter rules.

Pure numpy/pandas (no TensorFlow): the file formats of `--candidate-attributes`, the
GroupLens and synthetic attributes, augmentation, the plain layout and the reference
filter (`AttributeTable.passes`) that the graph is tested against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scann_serving.export._attribute_sources import read_attribute_file
from scann_serving.export._attributes import (
    AttributeTable,
    CandidateAttributes,
    FilterError,
    year_from_title,
)
from scann_serving.export._data import DataError, SyntheticSpec, synthetic
from scann_serving.export._grouplens import grouplens

IDS = np.asarray(["a", "b", "c", "d"], dtype=object)


def _table() -> AttributeTable:
    source = CandidateAttributes(
        IDS[:3],
        {"genre": [("Comedy", "Drama"), ("Comedy",), ()], "shop": [("s1",), ("s2",), ("s1",)]},
        {"year": np.asarray([1990.0, np.nan, 2005.0])},
    )
    return source.align(IDS)  # "d" is missing from the source: no tokens, no year


def _passing(table: AttributeTable, allow=(), deny=(), numeric=()) -> list[str]:
    return list(IDS[table.passes(table.parse(allow, deny, numeric))])


def test_or_within_a_namespace_and_across_namespaces() -> None:
    table = _table()
    assert _passing(table, ["genre=Comedy"]) == ["a", "b"]
    assert _passing(table, ["genre=Drama", "genre=Comedy"]) == ["a", "b"]
    assert _passing(table, ["genre=Comedy", "shop=s1"]) == ["a"]
    assert _passing(table, ["genre=Western"]) == []  # a value nobody has matches nothing
    assert _passing(table) == ["a", "b", "c", "d"]


def test_deny_excludes_and_numeric_restricts_must_all_hold() -> None:
    table = _table()
    assert _passing(table, deny=["genre=Drama"]) == ["b", "c", "d"]
    assert _passing(table, numeric=["year>=1990"]) == ["a", "c"]  # no year fails
    assert _passing(table, numeric=["year>=1990", "year < 2000"]) == ["a"]
    assert _passing(table, numeric=["year!=1990"]) == ["c"]
    assert _passing(table, ["shop=s1"], ["genre=Drama"], ["year==2005"]) == ["c"]


@pytest.mark.parametrize(
    ("allow", "numeric", "named"),
    [
        (["colour=red"], [], "unknown namespace 'colour'"),
        (["Comedy"], [], "'namespace=value'"),
        ([], ["year=>1990"], "malformed"),
        ([], ["size<3"], "unknown attribute 'size'"),
    ],
)
def test_bad_filters_name_the_input(allow: list[str], numeric: list[str], named: str) -> None:
    with pytest.raises(FilterError, match=named):
        _table().parse(allow, (), numeric)


def test_augmented_copies_inherit_and_the_layout_round_trips(tmp_path: Path) -> None:
    table = _table()
    tiled = table.tile(2)
    assert tiled.num_candidates == 12
    spec = tiled.parse(["genre=Comedy"], (), ["year<2000"])
    assert np.flatnonzero(tiled.passes(spec)).tolist() == [0, 4, 8]
    tiled.save(tmp_path / "attributes")
    loaded = AttributeTable.load(tmp_path / "attributes")
    assert loaded.namespaces == ("genre", "shop") and loaded.numeric_names == ("year",)
    assert np.array_equal(loaded.offsets, tiled.offsets)
    assert np.array_equal(loaded.tokens, tiled.tokens)
    assert np.array_equal(loaded.passes(spec), tiled.passes(spec))
    schema = table.schema()
    assert schema["namespaces"]["genre"] == {
        "tokens": 2,
        "assignments": 3,
        "top": {"genre=Comedy": 2, "genre=Drama": 1},
    }
    assert schema["numeric_attributes"]["year"] == {"min": 1990.0, "max": 2005.0, "missing": 2}
    assert schema["candidates_with_tokens"] == 3


def _damage_numeric(directory: Path) -> None:
    np.save(directory / "numeric.npy", np.zeros((2, 1)))  # 2 rows for 4 candidates


def _damage_tokens(directory: Path) -> None:
    tokens = np.load(directory / "tokens.npy")
    tokens[-1] = 99  # a token id beyond the vocabulary
    np.save(directory / "tokens.npy", tokens)


def _damage_offsets(directory: Path) -> None:
    offsets = np.load(directory / "offsets.npy")
    offsets[1], offsets[2] = offsets[2], offsets[1]
    np.save(directory / "offsets.npy", offsets)


def _drop_schema(directory: Path) -> None:
    (directory / "schema.json").unlink()


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (_damage_numeric, "numeric of shape"),
        (_damage_tokens, "outside the vocabulary"),
        (_damage_offsets, "offsets decrease"),
        (_drop_schema, "schema.json"),
    ],
)
def test_loading_damaged_attribute_files_names_them_and_the_fix(
    tmp_path: Path, damage: Any, named: str
) -> None:
    """The export reads its layout back through the server's reader, with the server's
    checks: arrays that disagree fail to load instead of filtering the wrong rows."""
    directory = tmp_path / "attributes"
    _table().save(directory)
    assert AttributeTable.load(directory).num_candidates == 4  # intact: loads
    damage(directory)
    with pytest.raises(ValueError, match=named) as info:
        AttributeTable.load(directory)
    assert str(directory) in str(info.value) and "re-export" in str(info.value)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_attribute_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"attributes{suffix}"
    frame = pd.DataFrame(
        {
            "identifier": ["Amélie (2001)", "千と千尋の神隠し (2001)", "b"],
            "genre": ["Comedy|Romance", "Animation", ""],
            "year": ["2001", "2001", ""],
            "price": ["9.5", "12", "3"],
        }
    )
    if suffix == ".parquet":
        frame["genre"] = [["Comedy", "Romance"], ["Animation"], []]
        frame["year"] = [2001.0, 2001.0, np.nan]
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False, encoding="utf-8")
    source = read_attribute_file(path, "identifier")
    table = source.align(np.asarray(["b", "Amélie (2001)", "千と千尋の神隠し (2001)", "z"], object))
    assert table.namespaces == ("genre",) and table.numeric_names == ("price", "year")
    assert list(table.vocabulary) == ["genre=Animation", "genre=Comedy", "genre=Romance"]
    assert table.passes(table.parse(["genre=Romance"])).tolist() == [False, True, False, False]
    assert table.passes(table.parse((), (), ["year>2000"])).tolist() == [False, True, True, False]


def test_attribute_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_attribute_file(tmp_path / "missing.csv", "identifier")
    path = tmp_path / "a.csv"
    path.write_text("id,genre\nx,Comedy\nx,Drama\n")
    with pytest.raises(DataError, match="--candidate-id-column"):
        read_attribute_file(path, "identifier")
    with pytest.raises(DataError, match="'x' appears twice"):
        read_attribute_file(path, "id")
    path.write_bytes("identifier,genre\nx,Com\xe9dy\n".encode("latin-1"))
    with pytest.raises(DataError, match="line 2"):
        read_attribute_file(path, "identifier")
    path.write_text("identifier,gen re\nx,Comedy\n")
    with pytest.raises(DataError, match="rename the column"):
        read_attribute_file(path, "identifier")


def test_synthetic_dataset_has_genres_and_years() -> None:
    data = synthetic(SyntheticSpec(50, 200, 1000))
    assert data.attributes is not None
    table = data.attributes.align(data.items)
    assert table.namespaces == ("genre",) and table.numeric_names == ("year",)
    assert (np.diff(table.offsets) >= 1).all()  # every title has a genre
    years = table.numeric[:, 0]
    assert [year_from_title(t) for t in data.items] == years.tolist()


def test_ml_100k_genre_flags_and_release_year(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    flags = ["0"] * 19
    flags[5] = flags[14] = "1"  # Comedy, Romance
    items = [
        "|".join(["1", "Amélie (2001)", "01-Jan-2001", "", "http://x", *flags]),
        "|".join(["2", "Old Film (1950)", "", "", "http://x", *(["0"] * 19)]),
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.data").write_text("1\t1\t5\t1\n2\t2\t3\t2\n3\t1\t4\t3\n")
    data = grouplens("ml-100k", folder)
    assert data.attributes is not None
    table = data.attributes.align(data.items)
    comedy = table.passes(table.parse(["genre=Comedy", "genre=Romance"]))
    assert list(data.items[comedy]) == ["Amélie (2001)"]
    years = dict(zip(data.items, table.numeric[:, 0], strict=True))
    assert years == {"Amélie (2001)": 2001.0, "Old Film (1950)": 1950.0}  # title fallback


def test_csv_grouplens_genres_and_title_years(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n1,"Toy Story (1995)",Animation|Comedy\n2,Black Mirror,(no genres listed)\n',
        encoding="utf-8",
    )
    (folder / "ratings.csv").write_text("userId,movieId,rating\n1,1,5\n2,2,3\n3,1,4\n")
    data = grouplens("ml-latest-small", folder)
    assert data.attributes is not None
    table = data.attributes.align(data.items)
    passing = table.passes(table.parse(["genre=Comedy"], (), ["year>=1990"]))
    assert list(data.items[passing]) == ["Toy Story (1995)"]
    assert np.isnan(table.numeric[list(data.items).index("Black Mirror"), 0])
