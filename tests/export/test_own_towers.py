"""Bring your own towers: a Keras 3 query tower saved with `model.export()` plus candidate
embeddings from .npy or Parquet, exported and served with exact (brute-force) results."""

from __future__ import annotations

from pathlib import Path

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
