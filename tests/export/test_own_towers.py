"""Bring your own towers: a Keras 3 query tower saved with `model.export()` plus candidate
embeddings from .npy or Parquet, exported and served with exact (brute-force) results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scann_serving.export import DataError, OwnTowersOptions

USERS = [f"u{i}" for i in range(40)]
DIM = 8


@pytest.fixture(scope="module")
def keras3_tower(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A Keras 3 StringLookup + Embedding query tower exported with `model.export()`, and
    the embeddings it gives `USERS` (computed by Keras itself)."""
    import keras  # Keras 3, independent of the tf_keras that TFRS uses

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(), dtype="string", name="user_id")
    ids = keras.layers.StringLookup(vocabulary=USERS)(inputs)
    model = keras.Model(inputs, keras.layers.Embedding(len(USERS) + 1, DIM)(ids))
    path = tmp_path_factory.mktemp("keras3") / "query_tower"
    model.export(str(path), verbose=False)
    import tensorflow as tf

    return path, np.asarray(model(tf.constant(USERS)), dtype=np.float32)


def test_own_towers_export_and_serve_exact_results(
    keras3_tower: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401  (loading needs the Scann ops)
    from scann_serving.export import ExportConfig, IndexOptions, export_model

    tower, user_embeddings = keras3_tower
    rng = np.random.default_rng(3)
    candidates = rng.standard_normal((300, DIM)).astype(np.float32)
    identifiers = np.asarray([f"item-{i}" for i in range(300)])
    np.save(tmp_path / "candidates.npy", candidates)
    np.save(tmp_path / "ids.npy", identifiers)
    own = OwnTowersOptions(tower, tmp_path / "candidates.npy", tmp_path / "ids.npy")
    config = ExportConfig(
        output=tmp_path / "models",
        dataset=None,
        own_towers=own,
        index=IndexOptions(kind="brute-force"),
        eval_queries=50,
        latency_queries=10,
    )
    result = export_model(config, progress=lambda message: None)
    assert result.manifest["training"]["model"] == "own"
    assert result.manifest["verification"]["identical_identifiers"] is True
    assert result.manifest["dataset"]["name"] == "own-candidates"
    # Without a dataset, sampled candidate embeddings serve as the held-out queries.
    assert result.manifest["evaluation"]["queries"] == 50
    assert result.manifest["evaluation"]["recall_at_k"] == 1.0

    loaded = tf.saved_model.load(str(result.version_dir))
    got = loaded.signatures["serving_default"](query=tf.constant(USERS[:5]))["identifiers"]
    expected = identifiers[np.argsort(-(user_embeddings[:5] @ candidates.T), axis=1)[:, :10]]
    assert [[i.decode() for i in row] for row in got.numpy()] == expected.tolist()


def test_parquet_candidates_load(keras3_tower: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    import pandas as pd
    from scann_serving.export._own_towers import load_own_towers

    frame = pd.DataFrame(
        {"sku": ["a", "b", "c"], "vec": [np.full(DIM, v, np.float32).tolist() for v in (1, 2, 3)]}
    )
    frame.to_parquet(tmp_path / "items.parquet")
    options = OwnTowersOptions(
        keras3_tower[0], tmp_path / "items.parquet", id_column="sku", embedding_column="vec"
    )
    towers = load_own_towers(options)
    assert list(towers.identifiers) == ["a", "b", "c"]
    assert towers.embeddings.shape == (3, DIM) and towers.embeddings[2, 0] == 3.0


def test_mismatched_or_missing_inputs_say_what_to_do(
    keras3_tower: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    from scann_serving.export._own_towers import load_own_towers

    tower = keras3_tower[0]
    np.save(tmp_path / "wide.npy", np.zeros((4, DIM + 1), np.float32))
    (tmp_path / "ids.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(DataError, match="both towers must share a width"):
        load_own_towers(OwnTowersOptions(tower, tmp_path / "wide.npy", tmp_path / "ids.txt"))
    with pytest.raises(DataError, match="needs --candidate-ids"):
        load_own_towers(OwnTowersOptions(tower, tmp_path / "wide.npy"))
    with pytest.raises(DataError, match="not a SavedModel directory"):
        load_own_towers(OwnTowersOptions(tmp_path, tmp_path / "wide.npy", tmp_path / "ids.txt"))
    (tmp_path / "ids.txt").write_text("a\nb\n")
    np.save(tmp_path / "ok.npy", np.zeros((4, DIM), np.float32))
    with pytest.raises(DataError, match="2 candidate identifiers for 4 embeddings"):
        load_own_towers(OwnTowersOptions(tower, tmp_path / "ok.npy", tmp_path / "ids.txt"))


def _save_id_tower(path: Path, table: np.ndarray, dtype: Any, *, modulo: bool = False) -> Path:
    """A query tower over integer ids written with plain TensorFlow: an Embedding-style table
    lookup (or, with `modulo`, a hashing-style lookup that accepts every id), saved with a
    `serve` endpoint like Keras 3's `model.export()`."""
    import tensorflow as tf

    module = tf.Module()
    module.table = tf.Variable(table)
    rows = len(table)

    @tf.function(input_signature=[tf.TensorSpec([None], dtype, name="user_id")])
    def serve(user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = tf.math.floormod(user_id, rows) if modulo else user_id
        return {"output_0": tf.gather(module.table, ids)}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serve": serve})
    return path


def _id_export(tmp_path: Path, tower: Path, rows: int) -> Any:
    from scann_serving.export import ExportConfig, IndexOptions, export_model

    rng = np.random.default_rng(5)
    np.save(tmp_path / "movies.npy", rng.standard_normal((rows, DIM)).astype(np.float32))
    (tmp_path / "movie_ids.txt").write_text("".join(f"{i}\n" for i in range(1, rows + 1)))
    own = OwnTowersOptions(
        tower, tmp_path / "movies.npy", tmp_path / "movie_ids.txt", signature="serve"
    )
    config = ExportConfig(
        output=tmp_path / "models",
        dataset=None,
        own_towers=own,
        index=IndexOptions(kind="brute-force"),
        eval_queries=20,
        latency_queries=5,
        verify=False,
    )
    return export_model(config, progress=lambda message: None)


def test_an_integer_id_tower_exports_with_an_int64_query_checked_in_the_graph(
    tmp_path: Path,
) -> None:
    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401  (loading needs the Scann ops)

    users = np.random.default_rng(4).standard_normal((50, DIM)).astype(np.float32)
    tower = _save_id_tower(tmp_path / "tower", users, tf.int32)
    result = _id_export(tmp_path, tower, 120)
    assert result.manifest["query_key"] == {
        "dtype": "int64",
        "tower_dtype": "int32",
        "min_id": 0,
        "max_id": 49,
    }
    loaded = tf.saved_model.load(str(result.version_dir))
    serving = loaded.signatures["serving_default"]
    assert serving.structured_input_signature[1]["query"].dtype == tf.int64
    got = serving(query=tf.constant([3, 49], tf.int64))["identifiers"].numpy()
    movies = np.load(tmp_path / "movies.npy")
    best = np.argsort(-(users[[3, 49]] @ movies.T), axis=1)[:, :10] + 1
    assert [[int(i) for i in row] for row in got] == best.tolist()
    # What TF Serving (no manifest check) answers: the graph refuses unknown ids itself.
    for bad in (50, -1, 2**40):
        with pytest.raises(tf.errors.InvalidArgumentError, match="ids the query tower knows"):
            serving(query=tf.constant([bad], tf.int64))


def test_an_id_tower_that_takes_any_id_records_no_bounds(tmp_path: Path) -> None:
    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401  (loading needs the Scann ops)

    users = np.random.default_rng(6).standard_normal((30, DIM)).astype(np.float32)
    tower = _save_id_tower(tmp_path / "tower", users, tf.int64, modulo=True)
    result = _id_export(tmp_path, tower, 40)
    assert result.manifest["query_key"] == {
        "dtype": "int64",
        "tower_dtype": "int64",
        "min_id": None,
        "max_id": None,
    }
    serving = tf.saved_model.load(str(result.version_dir)).signatures["serving_default"]
    big = serving(query=tf.constant([2**40 + 7], tf.int64))["identifiers"].numpy()
    small = serving(query=tf.constant([(2**40 + 7) % 30], tf.int64))["identifiers"].numpy()
    assert big.tolist() == small.tolist()


def test_query_key_spec_parses_ids_and_names_bad_ones() -> None:
    from scann_serving.export._types import QueryKeySpec

    spec = QueryKeySpec("int32", 0, 9)
    assert spec.dtype == "int64" and spec.integer
    assert spec.parse(["3", 4, b"5"], "keys").tolist() == [3, 4, 5]
    assert spec.sample(3).tolist() == [0, 1, 2]
    for bad, words in [("abc", "'abc' is not an integer"), (4.5, "4.5"), ("10", "0..9")]:
        with pytest.raises(ValueError, match=words):
            spec.parse([bad], "keys")
    assert QueryKeySpec().parse([42], "keys").tolist() == ["42"]
    assert QueryKeySpec().to_dict()["dtype"] == "string"
    assert QueryKeySpec("int64").bounds == (-(2**63), 2**63 - 1)
