"""Text encodings of every `--dataset` source: GroupLens files in their real encodings
(latin-1 ml-100k/ml-1m, UTF-8 CSV releases), the user's CSV/Parquet, the synthetic
dataset's non-ASCII titles and keys, and clear errors for undecodable bytes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _export_support import (
    CSV_TITLES,
    LATIN1_TITLES,
    write_ml_1m,
    write_ml_100k,
    write_ml_latest,
    zip_folder,
)
from scann_serving.export import DataError, DataOptions, SyntheticSpec, load_dataset


def _non_ascii(values: np.ndarray) -> list[str]:
    return [str(v) for v in values if not str(v).isascii()]


def test_ml_100k_and_ml_1m_are_read_as_latin_1(tmp_path: Path) -> None:
    folder = write_ml_100k(tmp_path / "ml-100k")
    raw = (folder / "u.item").read_bytes()
    assert b"Am\xe9lie" in raw  # the fixture is latin-1, like GroupLens' file
    small = load_dataset(f"ml-100k:{folder}")
    assert set(small.items) >= set(LATIN1_TITLES)
    assert small.summary()["encoding"] == {"u.item": "latin-1", "u.data": "ascii"}
    one_m = load_dataset(f"ml-1m:{write_ml_1m(tmp_path / 'ml-1m')}")
    assert set(one_m.items) >= set(LATIN1_TITLES)
    assert one_m.summary()["encoding"]["movies.dat"] == "latin-1"


def test_a_grouplens_file_re_saved_as_utf_8_gives_the_same_titles(tmp_path: Path) -> None:
    folder = write_ml_100k(tmp_path / "ml-100k")
    latin = load_dataset(f"ml-100k:{folder}")
    item_file = folder / "u.item"
    item_file.write_bytes(item_file.read_bytes().decode("latin-1").encode("utf-8"))
    utf8 = load_dataset(f"ml-100k:{folder}")
    assert list(utf8.items) == list(latin.items)
    assert utf8.summary()["encoding"]["u.item"] == "utf-8"


def test_legacy_lines_split_only_at_newlines(tmp_path: Path) -> None:
    """Latin-1 byte 0x85 is U+0085, a line break to `str.splitlines`; not to GroupLens."""
    folder = write_ml_100k(tmp_path / "ml-100k", items=5)
    lines = (folder / "u.item").read_bytes().split(b"\n")
    fields = lines[1].split(b"|")
    fields[1] += b" \x85 Part 2"
    lines[1] = b"|".join(fields)
    (folder / "u.item").write_bytes(b"\n".join(lines))
    (folder / "u.data").write_text("1\t2\t5\t881250949\n3\t1\t4\t881250950\n")
    data = load_dataset(f"ml-100k:{folder}")
    assert any("\x85 Part 2" in title for title in data.items)
    assert len(data.items) == 5


@pytest.mark.parametrize("kind", ["ml-20m", "ml-25m", "ml-32m", "ml-latest", "ml-latest-small"])
def test_csv_releases_keep_utf_8_titles_with_their_year(tmp_path: Path, kind: str) -> None:
    folder = write_ml_latest(tmp_path / kind)
    data = load_dataset(f"{kind}:{folder}")
    assert data.num_interactions == 250
    assert set(data.items) >= set(CSV_TITLES)  # commas, CJK, emoji; years kept
    assert "Picture, The 7 (1977)" in set(data.items)
    assert data.summary()["source"] == kind
    assert data.summary()["encoding"] == {"movies.csv": "utf-8", "ratings.csv": "utf-8"}
    assert all(str(u).isdigit() for u in data.users)


def test_csv_release_zip_gives_the_same_data_as_the_folder(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "ml-latest-small")
    archive = zip_folder(folder, tmp_path / "ml-latest-small.zip", "ml-latest-small")
    from_zip = load_dataset(f"ml-latest-small:{archive}")
    from_dir = load_dataset(f"ml-latest-small:{folder}")
    assert list(from_zip.train_items) == list(from_dir.train_items)
    assert from_zip.fingerprint() == from_dir.fingerprint()


def test_undecodable_csv_release_names_the_file_and_line(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "ml-latest")
    movies = (folder / "movies.csv").read_bytes().split(b"\n")
    movies[2] = movies[2].replace("千".encode(), b"\xff\xfe")  # line 3: not UTF-8
    (folder / "movies.csv").write_bytes(b"\n".join(movies))
    with pytest.raises(DataError) as caught:
        load_dataset(f"ml-latest:{folder}")
    message = str(caught.value)
    assert re.search(r"movies\.csv line 3, byte \d+: b'\\xff' is not valid utf-8", message)
    assert "re-download ml-latest.zip" in message


def test_csv_release_errors_name_the_line(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "ml-25m")
    ratings = folder / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,10,4.0,1\n\n2,999,3.0,2\n")
    with pytest.raises(DataError, match=r"ratings\.csv line 4: movie id 999 is not in movies\.csv"):
        load_dataset(f"ml-25m:{folder}")
    ratings.write_text("user,movie\n1,10\n")
    with pytest.raises(DataError, match=r"ratings\.csv has no column 'userId' \(header: "):
        load_dataset(f"ml-25m:{folder}")
    (folder / "movies.csv").unlink()
    with pytest.raises(DataError, match=r"has no movies\.csv; a ml-25m release contains"):
        load_dataset(f"ml-25m:{folder}")


def test_interactions_csv_is_utf_8_with_or_without_bom(tmp_path: Path) -> None:
    rows = [("zoë", "Amélie (2001)"), ("千尋", "千と千尋の神隠し (2001)"), ("🦊", "Ça tourne 🎬")]
    text = "user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows * 4)
    for name, raw in (("plain.csv", text.encode()), ("bom.csv", text.encode("utf-8-sig"))):
        path = tmp_path / name
        path.write_bytes(raw)
        data = load_dataset(f"interactions:{path}")
        assert set(data.users) == {u for u, _ in rows}
        assert set(data.items) == {i for _, i in rows}


def test_interactions_csv_in_another_encoding(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes("user_id,item_id\nu1,ok\nu2,Amélie (2001)\nu3,x\n".encode("latin-1"))
    with pytest.raises(DataError) as caught:
        load_dataset(f"interactions:{path}")
    message = str(caught.value)
    assert f"{path} line 3, byte 6: b'\\xe9' is not valid utf-8" in message
    assert "--encoding latin-1" in message
    data = load_dataset(f"interactions:{path}", DataOptions(encoding="latin-1"))
    assert "Amélie (2001)" in set(data.items)
    assert data.summary()["encoding"] == "latin-1"
    # Neither UTF-8 nor the declared encoding: cp1252 leaves byte 0x81 undefined.
    path.write_bytes(b"user_id,item_id\nu1,ok\nu2,bad \x81 byte\n")
    with pytest.raises(
        DataError, match=r"events\.csv line 3, byte 8: b'\\x81' is not valid cp1252"
    ):
        load_dataset(f"interactions:{path}", DataOptions(encoding="cp1252"))
    with pytest.raises(DataError, match="--encoding 'klingon' is not a text encoding"):
        load_dataset(f"interactions:{path}", DataOptions(encoding="klingon"))


def test_interactions_parquet_strings_and_binary_columns(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "events.parquet"
    users = ["zoë", "千尋"] * 5
    pd.DataFrame({"user_id": users, "item_id": ["Amélie".encode()] * 10}).to_parquet(path)
    data = load_dataset(f"interactions:{path}")
    assert set(data.users) == {"zoë", "千尋"} and list(data.items) == ["Amélie"]
    pd.DataFrame({"user_id": users, "item_id": [b"ok"] * 3 + [b"\xe9"] * 7}).to_parquet(path)
    with pytest.raises(DataError, match=r"column 'item_id' row 4: b'\\xe9' is not valid UTF-8"):
        load_dataset(f"interactions:{path}")


def test_synthetic_has_non_ascii_titles_and_keys_in_the_plain_order() -> None:
    """A fixed fraction of titles and user keys is non-ASCII; stripping the additions gives
    the plain names in the same order, so the trained model (vocabulary order) and every
    figure measured on the synthetic dataset are unchanged by them."""
    data = load_dataset("synthetic", DataOptions(synthetic=SyntheticSpec(200, 300, 3_000)))
    titles, users = _non_ascii(data.items), _non_ascii(data.users)
    assert len(titles) == 300 // 8 and len(users) == 200 // 8
    assert any("千と千尋の神隠し" in t for t in titles) and any("🎬" in t for t in titles)
    assert "7-" in "".join(users) and "42" in set(data.users)
    plain_titles = [re.sub(r" \([^()]*\) (\(\d{4}\))$", r" \1", str(t)) for t in data.items]
    plain_users = [str(u).split("-")[0] for u in data.users]
    for plain in (plain_titles, plain_users):
        assert plain == sorted(plain) and len(set(plain)) == len(plain)
    assert load_dataset("synthetic").fingerprint() == load_dataset("synthetic").fingerprint()


def test_two_tower_training_on_latin_1_titles(tmp_path: Path) -> None:
    """The reported crash: training encoded the titles as ASCII."""
    from scann_serving.export._options import TrainingOptions
    from scann_serving.export._towers import train_two_tower

    data = load_dataset(f"ml-100k:{write_ml_100k(tmp_path / 'ml-100k')}")
    options = TrainingOptions(embedding_dim=4, epochs=1, batch_size=64)
    towers = train_two_tower(data, options, progress=lambda message: None)
    assert set(towers.identifiers) >= set(LATIN1_TITLES)
    assert towers.embeddings.shape == (len(data.items), 4)
    assert towers.embed_queries(np.asarray(["1", "zoë"], dtype=object)).shape == (2, 4)


def test_candidate_ids_files_are_utf_8(tmp_path: Path) -> None:
    """--candidate-ids: one UTF-8 identifier per line (a U+2028 inside one stays), or a .npy
    of str or UTF-8 bytes; undecodable bytes name the file and line."""
    from scann_serving.export._own_towers import _read_ids

    ids = ["Amélie (2001)", "千と千尋の神隠し", "line\u2028separator", "🎬"]
    text = tmp_path / "ids.txt"
    text.write_bytes(("\n".join(ids) + "\n").encode("utf-8"))
    assert _read_ids(text, len(ids)) == ids
    as_bytes = tmp_path / "ids.npy"
    np.save(as_bytes, np.asarray([i.encode("utf-8") for i in ids]))
    assert _read_ids(as_bytes, len(ids)) == ids
    text.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"ids\.txt line 2, byte 4: b'\\xe9' is not valid utf-8"):
        _read_ids(text, 2)
