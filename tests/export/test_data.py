"""Dataset sources: synthetic, GroupLens files (folder and zip), CSV/Parquet, offline TFDS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _export_support import LATIN1_TITLES, write_ml_1m, write_ml_100k, zip_folder
from scann_serving.export import DataError, DataOptions, SyntheticSpec, load_dataset


def test_synthetic_is_movielens_shaped_and_deterministic() -> None:
    first, second = load_dataset("synthetic"), load_dataset("synthetic")
    assert first.fingerprint() == second.fingerprint()
    assert (len(first.users), len(first.items)) == (1_000, 1_700)
    assert first.num_interactions == 100_000
    assert (len(first.train_users), len(first.test_users)) == (80_000, 20_000)
    assert len(set(first.items)) == len(first.items)
    assert all(title.endswith(")") and "(" in title for title in first.items[:50])
    # Distinct (user, item) pairs, like ratings: nobody rates a movie twice.
    pairs = set(zip(first.train_users, first.train_items, strict=True))
    pairs |= set(zip(first.test_users, first.test_items, strict=True))
    assert len(pairs) == 100_000


def test_synthetic_has_planted_taste_structure() -> None:
    """A rank-8 factorisation of the training matrix predicts held-out items clearly better
    than popularity alone: there is taste structure for the two towers to learn."""
    data = load_dataset("synthetic", DataOptions(synthetic=SyntheticSpec(300, 600, 15_000)))
    user_row = {u: i for i, u in enumerate(data.users)}
    item_col = {t: i for i, t in enumerate(data.items)}
    matrix = np.zeros((len(user_row), len(item_col)))
    for u, t in zip(data.train_users, data.train_items, strict=True):
        matrix[user_row[u], item_col[t]] = 1.0
    left, sing, right = np.linalg.svd(matrix, full_matrices=False)
    low_rank = (left[:, :8] * sing[:8]) @ right[:8]
    popularity = np.tile(matrix.sum(axis=0), (len(user_row), 1))

    def hit_rate(scores: np.ndarray, k: int = 50) -> float:
        top = np.argsort(-scores, axis=1)[:, :k]
        pairs = zip(data.test_users, data.test_items, strict=True)
        return float(np.mean([item_col[t] in top[user_row[u]] for u, t in pairs]))

    assert hit_rate(low_rank) > 1.3 * hit_rate(popularity)


def test_synthetic_size_is_validated() -> None:
    with pytest.raises(DataError, match="--synthetic-interactions"):
        load_dataset("synthetic", DataOptions(synthetic=SyntheticSpec(10, 10, 5)))


def test_ml_100k_folder_loads_titles_and_splits(tmp_path: Path) -> None:
    folder = write_ml_100k(tmp_path / "ml-100k")
    data = load_dataset(f"ml-100k:{folder}")
    assert data.num_interactions == 300
    assert (len(data.train_users), len(data.test_users)) == (240, 60)
    assert "Amélie (2001)" in set(data.items)  # latin-1 decoded, ids mapped to titles
    assert set(data.train_items) <= set(data.items)
    assert data.summary()["source"] == "ml-100k"


def test_ml_100k_zip_gives_the_same_data_as_the_folder(tmp_path: Path) -> None:
    folder = write_ml_100k(tmp_path / "ml-100k")
    archive = zip_folder(folder, tmp_path / "ml-100k.zip", "ml-100k")
    from_zip, from_dir = load_dataset(f"ml-100k:{archive}"), load_dataset(f"ml-100k:{folder}")
    assert list(from_zip.train_items) == list(from_dir.train_items)
    assert list(from_zip.test_users) == list(from_dir.test_users)


def test_ml_1m_files_load(tmp_path: Path) -> None:
    data = load_dataset(f"ml-1m:{write_ml_1m(tmp_path / 'ml-1m')}")
    assert data.num_interactions == 200
    assert set(data.items) >= set(LATIN1_TITLES)  # latin-1 decoded, '::' separated
    assert all(item.startswith("Film ") or item in LATIN1_TITLES for item in data.train_items)


def test_missing_grouplens_input_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such file or folder; download ml-100k\.zip"):
        load_dataset(f"ml-100k:{tmp_path / 'nope'}")
    folder = write_ml_100k(tmp_path / "partial")
    (folder / "u.item").unlink()
    with pytest.raises(DataError, match=r"has no u\.item.*contains u\.data and u\.item"):
        load_dataset(f"ml-100k:{folder}")
    (folder / "u.item").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_dataset(f"ml-100k:{folder}")


def test_unknown_movie_id_is_reported_with_its_line(tmp_path: Path) -> None:
    folder = write_ml_100k(tmp_path / "ml-100k", items=5)
    (folder / "u.data").write_text("1\t99\t5\t881250949\n")
    with pytest.raises(DataError, match=r"line 1: movie id 99 is not in u\.item"):
        load_dataset(f"ml-100k:{folder}")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_interactions_file_with_custom_columns(tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"customer": [f"c{i % 7}" for i in range(50)], "sku": [f"s{i % 11}" for i in range(50)]}
    )
    path = tmp_path / f"events{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    options = DataOptions(user_column="customer", item_column="sku", test_fraction=0.1)
    data = load_dataset(f"interactions:{path}", options)
    assert (len(data.train_users), len(data.test_users)) == (45, 5)
    assert set(data.users) == {f"c{i}" for i in range(7)}
    assert set(data.items) == {f"s{i}" for i in range(11)}


def test_interactions_missing_column_or_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,product\nu1,p1\n")
    with pytest.raises(
        DataError, match=r"no column 'item_id' \(columns: user_id, product\); pass --item-column"
    ):
        load_dataset(f"interactions:{path}")
    path.write_text("user_id,item_id\n")
    with pytest.raises(DataError, match=r"no complete .* rows"):
        load_dataset(f"interactions:{path}")
    with pytest.raises(DataError, match=r"no such file; pass a \.csv or \.parquet"):
        load_dataset(f"interactions:{tmp_path / 'missing.csv'}")


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(DataError, match=r"synthetic \| movielens/100k \| ml-100k:PATH"):
        load_dataset("movielens/1b")


def test_offline_tfds_ends_with_a_clear_message(tmp_path: Path) -> None:
    from scann_serving.export._sources import TFDS_HOST, _reachable

    if _reachable(TFDS_HOST):
        pytest.skip(f"{TFDS_HOST} is reachable; this test is about the offline case")
    options = DataOptions(tfds_data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match=r"unreachable \(offline\?\).*--dataset ml-100k:PATH"):
        load_dataset("movielens/100k", options)
