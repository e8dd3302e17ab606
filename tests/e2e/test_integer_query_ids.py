"""A KerasRS-style model over integer ids, end to end: Keras 3 `model.export()` → scann-export
→ scann-serve → official stubs, RetrievalClient, REST and scann-query.

The KerasRS ScaNN example trains a Keras 3 `RetrievalModel` whose towers are Embedding
tables over integer user and movie ids. The test builds the same kind of model in a
subprocess (Keras 3 on the TensorFlow backend cannot share a process with the tf-keras this
suite pins as `tf.keras`), trains it briefly, exports its user tower with Keras's own
`model.export(DIR)` (endpoint `serve`, input `user_id` int32 `[None]`) and dumps the
candidate table and the movie ids, as the README's "From the KerasRS example" tells users
to. Every way of querying the served model must give the brute-force top-k computed in
numpy from the tower's own embeddings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from serve_helpers import ServerProcess, console_script

MODEL = "movies"
NUM_USERS = 60  # user ids 1..60; the table has rows 0..60, so ids 0..60 are known
NUM_MOVIES = 300
K = 10

KERAS3_SCRIPT = """
import sys
from pathlib import Path

import keras
import numpy as np

out, users, movies = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(0)


class RetrievalModel(keras.Model):
    # The KerasRS ScaNN example's model: one Embedding table per tower.
    def __init__(self, num_users, num_candidates, embedding_dimension=16, **kwargs):
        super().__init__(**kwargs)
        self.user_embedding = keras.layers.Embedding(num_users, embedding_dimension)
        self.candidate_embedding = keras.layers.Embedding(num_candidates, embedding_dimension)
        self.loss_fn = keras.losses.MeanSquaredError()

    def call(self, inputs, training=False):
        return {"user_embeddings": self.user_embedding(inputs)}

    def compute_loss(self, x, y, y_pred, sample_weight, training=True):
        candidates = self.candidate_embedding(y["movie_id"])
        scores = keras.ops.sum(y_pred["user_embeddings"] * candidates, axis=1, keepdims=True)
        return self.loss_fn(keras.ops.expand_dims(y["rating"], -1), scores, sample_weight)


rng = np.random.default_rng(0)
x = rng.integers(1, users + 1, 2000).astype("int32")
y = {
    "movie_id": rng.integers(1, movies + 1, 2000).astype("int32"),
    "rating": rng.uniform(0.0, 1.0, 2000).astype("float32"),
}
model = RetrievalModel(users + 1, movies + 1)
model.compile(optimizer=keras.optimizers.Adagrad(learning_rate=0.1))
model.fit(x, y, batch_size=500, epochs=1, verbose=0)

# What the README tells users to add after the example.
user_id = keras.Input(shape=(), dtype="int32", name="user_id")
user_tower = keras.Model(user_id, model.user_embedding(user_id))
user_tower.export(str(out / "user_tower"), verbose=False)
np.save(out / "candidates.npy", model.candidate_embedding.embeddings.numpy()[1 : movies + 1])
(out / "movie_ids.txt").write_text("".join(f"{i}\\n" for i in range(1, movies + 1)))
ids = np.arange(users + 1, dtype="int32")
np.save(out / "user_embeddings.npy", np.asarray(user_tower.predict(ids, verbose=0)))
"""


@dataclass(frozen=True)
class KerasModel:
    """The files the Keras 3 script wrote."""

    folder: Path

    @property
    def user_tower(self) -> Path:
        return self.folder / "user_tower"

    def top_k(self, users: list[int], k: int = K) -> list[list[str]]:
        """Brute-force top-k movie ids for `users`, from the tower's own embeddings."""
        table = np.load(self.folder / "user_embeddings.npy")
        candidates = np.load(self.folder / "candidates.npy")
        scores = table[users] @ candidates.T
        return [[str(i + 1) for i in row] for row in np.argsort(-scores, axis=1)[:, :k]]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1", **extra}


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> KerasModel:
    folder = tmp_path_factory.mktemp("kerasrs")
    env = _env(KERAS_BACKEND="tensorflow")
    env.pop("TF_USE_LEGACY_KERAS")  # Keras 3 itself, not tf-keras
    done = subprocess.run(
        [sys.executable, "-c", KERAS3_SCRIPT, str(folder), str(NUM_USERS), str(NUM_MOVIES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return KerasModel(folder)


@pytest.fixture(scope="module")
def exported(keras_model: KerasModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`scann-export` of the Keras user tower: a tree index that searches every leaf and
    reorders every candidate, so its answers are exact (and `--training-iterations` used)."""
    base = tmp_path_factory.mktemp("exports") / MODEL
    folder = keras_model.folder
    done = subprocess.run(
        [
            console_script("scann-export"),
            f"--output={base}",
            f"--model-name={MODEL}",
            f"--query-model={keras_model.user_tower}",
            "--query-model-signature=serve",
            f"--candidates={folder / 'candidates.npy'}",
            f"--candidate-ids={folder / 'movie_ids.txt'}",
            "--index=tree",
            "--num-leaves=10",
            "--num-leaves-to-search=10",
            f"--num-reordering-candidates={NUM_MOVIES}",
            "--dimensions-per-block=2",
            "--training-iterations=5",
            "--eval-queries=50",
            "--latency-queries=10",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return base


@pytest.fixture(scope="module")
def served(exported: Path) -> Iterator[ServerProcess]:
    with ServerProcess(model_name=MODEL, model_base_path=exported) as server:
        yield server


def _predict(server: ServerProcess, ids: Any, signature: str = "serving_default", **inputs: Any):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(ids))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    return [[i.decode() for i in row] for row in tf.make_ndarray(response.outputs["identifiers"])]


def _rpc_error(server: ServerProcess, ids: Any) -> Any:
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        _predict(server, ids)
    return caught.value


def test_the_export_records_an_int64_query(exported: Path) -> None:
    manifest = json.loads((exported / "1" / "assets.extra" / "scann_manifest.json").read_text())
    assert manifest["query_key"] == {
        "dtype": "int64",
        "tower_dtype": "int32",
        "min_id": 0,
        "max_id": NUM_USERS,
    }
    for name in ("serving_default", "retrieve", "retrieve_with_exclusions"):
        assert manifest["signatures"][name]["inputs"]["query"] == {"dtype": "int64", "shape": [-1]}
    assert manifest["index"]["training_iterations"] == 5
    assert manifest["verification"]["identical_identifiers"] is True
    assert manifest["evaluation"]["recall_at_k"] == 1.0
    # The Embedding over ids is a lookup table: the native bundle carries its rows and
    # answers every signature like the SavedModel (checked in the fresh process).
    assert manifest["native"]["tower"] == "integer_table"
    assert manifest["verification"]["native"]["rows_compared"] >= 2000


def test_official_stubs_send_int64_ids(served: ServerProcess, keras_model: KerasModel) -> None:
    users = [3, 42, 60]
    assert _predict(served, np.asarray(users, np.int64)) == keras_model.top_k(users)
    got = _predict(served, np.asarray(users, np.int64), "retrieve", k=np.int32(20))
    assert got == keras_model.top_k(users, 20)
    best = keras_model.top_k([7])[0]
    excluded = _predict(
        served,
        np.asarray([7], np.int64),
        "retrieve_with_exclusions",
        exclude=np.asarray([[best[0]]], dtype=object),
    )
    assert excluded == [keras_model.top_k([7], K + 1)[0][1:]]


def test_official_stubs_get_invalid_argument_for_bad_ids(served: ServerProcess) -> None:
    import grpc

    for ids, words in [
        (np.asarray([NUM_USERS + 1], np.int64), [str(NUM_USERS + 1), f"0..{NUM_USERS}"]),
        (np.asarray([5, -1], np.int64), ["element 1", "-1"]),
        (np.asarray([5], np.int32), ["expects int64", "int32"]),
        (np.asarray([b"5"], dtype=object), ["expects int64", "string"]),
    ]:
        error = _rpc_error(served, ids)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        for word in words:
            assert word in error.details()


def test_the_signature_metadata_says_int64(served: ServerProcess) -> None:
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        prediction_service_pb2_grpc,
    )

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    with served.channel() as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
            request, timeout=30
        )
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    for name in ("serving_default", "retrieve", "retrieve_with_exclusions"):
        assert defs.signature_def[name].inputs["query"].dtype == types_pb2.DT_INT64
    assert defs.signature_def["retrieve_with_exclusions"].inputs["exclude"].dtype == (
        types_pb2.DT_STRING
    )


def test_the_client_takes_ints_and_decimal_strings(
    served: ServerProcess, keras_model: KerasModel
) -> None:
    from scann_serving.client import InvalidRequest, RetrievalClient

    expected = keras_model.top_k([3, 42])
    with RetrievalClient(served.target, model=MODEL) as client:
        assert client.metadata().query_dtype == "DT_INT64"
        assert client.retrieve([3, 42]).identifiers.tolist() == expected
        assert client.retrieve(["3", "42"]).identifiers.tolist() == expected
        assert client.retrieve(np.asarray([3, 42])).identifiers.tolist() == expected
        assert client.retrieve(42).identifiers.tolist() == expected[1:]
        assert client.retrieve([3], 20).identifiers.tolist() == keras_model.top_k([3], 20)
        for bad, words in [
            (["abc"], ["'abc'", "integer ids"]),
            ([4.5], ["4.5", "integer ids"]),
            ([NUM_USERS + 1], [str(NUM_USERS + 1), f"0..{NUM_USERS}"]),
            ([2**70], [str(2**70)]),
        ]:
            with pytest.raises(InvalidRequest) as caught:
                client.retrieve(bad)
            assert isinstance(caught.value, ValueError)
            for word in words:
                assert word in str(caught.value)


def test_rest_takes_ints_and_decimal_strings(
    served: ServerProcess, keras_model: KerasModel
) -> None:
    url = f"{served.rest_url}/v1/models/{MODEL}:predict"
    expected = keras_model.top_k([3, 42])
    for instances in ([3, 42], ["3", "42"]):
        answer = requests.post(url, json={"instances": instances}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert [row["identifiers"] for row in answer.json()["predictions"]] == expected
    columnar = requests.post(url, json={"inputs": {"query": [3, 42]}}, timeout=30)
    assert columnar.json()["outputs"]["identifiers"] == expected
    for instances, word in [
        (["abc"], "'abc'"),
        ([4.5], "4.5"),
        ([True], "True"),
        ([2**70], str(2**70)),
        ([NUM_USERS + 1], f"0..{NUM_USERS}"),
    ]:
        answer = requests.post(url, json={"instances": instances}, timeout=30)
        assert answer.status_code == 400, answer.text
        assert word in answer.json()["error"]


def test_scann_query_sends_ids(served: ServerProcess, keras_model: KerasModel) -> None:
    done = subprocess.run(
        [
            console_script("scann-query"),
            f"--target={served.target}",
            f"--model={MODEL}",
            "--json",
            "--query",
            "3",
            "42",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["identifiers"] == keras_model.top_k([3, 42])
    bad = subprocess.run(
        [
            console_script("scann-query"),
            f"--target={served.target}",
            f"--model={MODEL}",
            "--query",
            "x",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert bad.returncode != 0 and "'x'" in bad.stderr
