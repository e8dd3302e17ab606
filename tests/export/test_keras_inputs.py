"""Keras 3 towers given directly: a model object (Python API) or a `.keras` file, plus the
names of its query tower and candidate Embedding, without the user writing an export step.

The models here run on the TensorFlow backend in the test process; the JAX backend and the
real commands are in tests/e2e/test_kerasrs_jax.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scann_serving.export import DataError, OwnTowersOptions

USERS, MOVIES, DIM = 12, 40, 8
MAPPED = range(1, 31)  # movie ids 1..30 have titles; rows 0 and 31..39 are not candidates


def _model() -> Any:
    """A KerasRS-example-style model: one Embedding table per tower, plus a Dense layer."""
    import keras

    @keras.saving.register_keras_serializable(package="test_keras_inputs")
    class RetrievalModel(keras.Model):
        def __init__(self, num_users: int, num_candidates: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.num_users, self.num_candidates = num_users, num_candidates
            self.user_embedding = keras.layers.Embedding(num_users, DIM)
            self.candidate_embedding = keras.layers.Embedding(num_candidates, DIM)
            self.projection = keras.layers.Dense(DIM)

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "num_users": self.num_users,
                "num_candidates": self.num_candidates,
            }

        def build(self, input_shape: Any) -> None:
            self.user_embedding.build(input_shape)
            self.candidate_embedding.build(input_shape)
            self.projection.build((*input_shape, DIM))
            super().build(input_shape)

        def call(self, inputs: Any) -> Any:
            return self.projection(self.user_embedding(inputs))

    keras.utils.set_random_seed(1)
    model = RetrievalModel(USERS, MOVIES)
    model.build((None,))
    return model


@pytest.fixture(scope="module")
def model() -> Any:
    return _model()


@pytest.fixture(scope="module")
def ids_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("maps") / "movies.tsv"
    titles = {1: "Amélie (2001)", 2: "千と千尋の神隠し (2001)"}
    lines = [f"{i}\t{titles.get(i, f'Movie {i}')}\n" for i in MAPPED]
    path.write_text("movie_id\ttitle\n" + "".join(lines), encoding="utf-8")
    return path


def test_a_model_object_exports_with_its_embedding_layers(
    model: Any, ids_map: Path, tmp_path: Path
) -> None:
    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401  (loading needs the Scann ops)
    from scann_serving.export import ExportConfig, IndexOptions, export_model

    own = OwnTowersOptions(
        model,
        query_submodel="user_embedding",
        candidate_layer="candidate_embedding",
        candidate_ids_map=ids_map,
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
    result = export_model(config, progress=lambda message: None)
    manifest = result.manifest
    assert manifest["query_key"] == {
        "dtype": "int64",
        "tower_dtype": "int32",
        "min_id": 0,
        "max_id": USERS - 1,
    }
    assert manifest["training"]["query_submodel"] == "user_embedding"
    assert manifest["training"]["candidate_layer"] == "candidate_embedding"
    assert manifest["training"]["candidate_rows_skipped"] == MOVIES - len(MAPPED)
    assert manifest["num_candidates"] == len(MAPPED)

    users = np.asarray(model.user_embedding.embeddings)[[0, 5, 11]]
    movies = np.asarray(model.candidate_embedding.embeddings)[list(MAPPED)]
    titles = [line.split("\t")[1] for line in ids_map.read_text("utf-8").splitlines()[1:]]
    expected = [[titles[j] for j in row] for row in np.argsort(-(users @ movies.T), axis=1)[:, :10]]
    serving = tf.saved_model.load(str(result.version_dir)).signatures["serving_default"]
    got = serving(query=tf.constant([0, 5, 11], tf.int64))["identifiers"].numpy()
    assert [[i.decode("utf-8") for i in row] for row in got] == expected


def test_names_that_are_not_there_or_do_not_fit_say_what_there_is(model: Any) -> None:
    import keras
    from scann_serving.export._keras_models import as_tower
    from scann_serving.export._own_towers import load_own_towers

    def refused(**names: Any) -> str:
        options = OwnTowersOptions(model, candidate_layer="candidate_embedding", **names)
        with pytest.raises(DataError) as caught:
            load_own_towers(options)
        return str(caught.value)

    message = refused(query_submodel="item_tower")
    assert "--query-submodel 'item_tower'" in message
    for listed in ("user_embedding (Embedding)", "candidate_embedding", "projection (Dense)"):
        assert listed in message
    assert "without a known input" in refused(query_submodel="projection")
    floats = keras.Input(shape=(DIM,), name="features")
    with pytest.raises(
        DataError, match=r"'float_tower' of the Keras model takes float32 \[None, 8\]"
    ):
        as_tower(
            keras.Model(floats, keras.layers.Dense(2)(floats)), "float_tower", "the Keras model"
        )
    options = OwnTowersOptions(model, query_submodel="user_embedding", candidate_layer="projection")
    with pytest.raises(
        DataError, match="'projection' of the Keras model is a layer of type Dense, not Embedding"
    ):
        load_own_towers(options)


def test_a_keras_file_with_classes_not_importable_is_read_as_weights(
    model: Any, ids_map: Path, tmp_path: Path
) -> None:
    from scann_serving.export._own_towers import load_own_towers

    path = tmp_path / "retrieval.keras"
    model.save(str(path))
    # The worker process cannot import this test's class, so it reads the file's weights:
    # Keras stores attributes that sort before "layers" by their names, others by class.
    wrong = OwnTowersOptions(
        path, query_submodel="user_embedding", candidate_layer="candidate_embedding"
    )
    with pytest.raises(DataError) as caught:
        load_own_towers(wrong)
    for word in ("'user_embedding'", "not importable", "embedding [12, 8]", "--keras-module"):
        assert word in str(caught.value)

    own = OwnTowersOptions(
        path,
        query_submodel="embedding",
        candidate_layer="candidate_embedding",
        candidate_ids_map=ids_map,
    )
    towers = load_own_towers(own)
    assert towers.training["keras"] == "weights"
    assert towers.identifiers[0] == "Amélie (2001)" and len(towers.identifiers) == len(MAPPED)
    expected = np.asarray(model.user_embedding.embeddings)[[3, 7]]
    np.testing.assert_allclose(towers.embed_queries(np.asarray([3, 7])), expected, rtol=1e-6)
    movies = np.asarray(model.candidate_embedding.embeddings)[list(MAPPED)]
    np.testing.assert_allclose(towers.embeddings, movies, rtol=1e-6)


def test_keras_options_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    from scann_serving.export._own_towers import load_own_towers

    with pytest.raises(DataError, match=r"no such file; pass the \.keras file"):
        load_own_towers(OwnTowersOptions(tmp_path / "absent.keras", candidate_layer="c"))
    (tmp_path / "bad.keras").write_bytes(b"not a zip archive")
    bad = OwnTowersOptions(tmp_path / "bad.keras", query_submodel="u", candidate_layer="c")
    with pytest.raises(DataError, match=r"bad\.keras is not a Keras 3 \.keras archive"):
        load_own_towers(bad)
    for options, words in [
        (OwnTowersOptions(tmp_path / "m.keras"), "exactly one candidate source"),
        (
            OwnTowersOptions(tmp_path / "m.keras", tmp_path / "c.npy", candidate_layer="c"),
            "exactly one candidate source",
        ),
        (
            OwnTowersOptions(tmp_path / "tower", tmp_path / "c.npy", query_submodel="u"),
            "--query-submodel needs a Keras 3 --query-model",
        ),
        (
            OwnTowersOptions(tmp_path / "m.keras", tmp_path / "c.npy", candidate_ids_map=tmp_path),
            "--candidate-ids-map names the rows of --candidate-layer",
        ),
    ]:
        with pytest.raises(ValueError, match=words):
            options.validate()


def test_the_command_line_maps_the_keras_flags(tmp_path: Path) -> None:
    from scann_serving.export._cli import config_from_args, parser

    args = parser().parse_args(
        [
            f"--output={tmp_path}",
            f"--query-model={tmp_path / 'm.keras'}",
            "--query-submodel=user_embedding",
            "--candidate-layer=candidate_embedding",
            f"--candidate-ids-map={tmp_path / 'movies.tsv'}",
            "--keras-module=models",
            "--keras-module=more.py",
        ]
    )
    own = config_from_args(args).own_towers
    assert own is not None and own.keras
    assert (own.query_submodel, own.candidate_layer) == ("user_embedding", "candidate_embedding")
    assert own.candidate_ids_map == tmp_path / "movies.tsv" and own.candidates is None
    assert own.keras_modules == ("models", "more.py")
