"""The KerasRS example's model on the JAX backend, straight from its `.keras` file:
keras_rs training → `model.save()` → `scann-export --query-model model.keras
--query-submodel user_embedding --candidate-layer candidate_embedding --candidate-ids-map`
→ `scann-serve` → the client and the official stubs.

The model is the KerasRS ScaNN example's (one `Embedding` table per tower over integer ids,
tables larger than the ids, MSE on dot-product scores), trained briefly on synthetic
interactions in a subprocess with `KERAS_BACKEND=jax`. Its class lives in a module the
export imports with `--keras-module`, so the `.keras` file loads whole. The truth is
keras_rs's own `BruteForceRetrieval` over the mapped candidates, computed on JAX; titles
include accents, CJK and emoji. (Where JAX is not installed the model trains on the
TensorFlow backend instead, which the test names in its output.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import ServerProcess, console_script

MODEL = "kerasrs"
USERS, MOVIES, PADDING = 40, 150, 10  # ids 1..USERS / 1..MOVIES; tables have PADDING more rows
K = 10
QUERIES = [1, 7, 23, 40]
BACKEND = "jax" if importlib.util.find_spec("jax") else "tensorflow"

MODEL_MODULE = """
import keras


@keras.saving.register_keras_serializable(package="kerasrs_example")
class RetrievalModel(keras.Model):
    # The KerasRS ScaNN example's model, plus get_config so that model.save() works.
    def __init__(self, num_users, num_candidates, embedding_dimension=16, **kwargs):
        super().__init__(**kwargs)
        self.num_users, self.num_candidates = num_users, num_candidates
        self.embedding_dimension = embedding_dimension
        self.user_embedding = keras.layers.Embedding(num_users, embedding_dimension)
        self.candidate_embedding = keras.layers.Embedding(num_candidates, embedding_dimension)
        self.loss_fn = keras.losses.MeanSquaredError()

    def get_config(self):
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_candidates": self.num_candidates,
            "embedding_dimension": self.embedding_dimension,
        }

    def build(self, input_shape):
        self.user_embedding.build(input_shape)
        self.candidate_embedding.build(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=False):
        return {"user_embeddings": self.user_embedding(inputs)}

    def compute_loss(self, x, y, y_pred, sample_weight, training=True):
        candidates = self.candidate_embedding(y["movie_id"])
        scores = keras.ops.sum(
            keras.ops.multiply(y_pred["user_embeddings"], candidates), axis=1, keepdims=True
        )
        return self.loss_fn(keras.ops.expand_dims(y["rating"], -1), scores, sample_weight)
"""

TRAIN_SCRIPT = """
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
users, movies, padding, k = (int(v) for v in sys.argv[2:6])
queries = [int(v) for v in sys.argv[6].split(",")]
sys.path.insert(0, str(out))

import keras
import keras_rs
import numpy as np
from kerasrs_model import RetrievalModel

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n = 3000
x = rng.integers(1, users + 1, n).astype("int32")
y = {
    "movie_id": rng.integers(1, movies + 1, n).astype("int32"),
    "rating": rng.uniform(0.0, 1.0, n).astype("float32"),
}
model = RetrievalModel(users + padding, movies + padding)
model.compile(optimizer=keras.optimizers.Adagrad(learning_rate=0.1))
model.fit(x, y, batch_size=500, epochs=2, verbose=0)
model.save(out / "model.keras")

special = ["Amélie (2001)", "千と千尋の神隠し (2001)", "Léon 🎬 (1994)", "Ça tourne"]
titles = {i: special[i - 1] if i <= len(special) else f"Movie {i}" for i in range(1, movies + 1)}
with open(out / "movies.tsv", "w", encoding="utf-8") as f:
    f.write("movie_id\\ttitle\\n")
    f.writelines(f"{i}\\t{t}\\n" for i, t in titles.items())

# The truth: keras_rs brute force over the mapped rows (ids 1..movies), on this backend.
table = keras.ops.convert_to_numpy(model.candidate_embedding.embeddings)[1 : movies + 1]
query_embeddings = model.user_embedding(keras.ops.array(queries, dtype="int32"))
expected = {}
for depth in (k, 2 * k):
    brute_force = keras_rs.layers.BruteForceRetrieval(
        candidate_embeddings=keras.ops.array(table), k=depth, return_scores=False
    )
    rows = keras.ops.convert_to_numpy(brute_force(query_embeddings))
    expected[depth] = [[titles[int(r) + 1] for r in row] for row in rows]
info = {"backend": keras.backend.backend(), "expected": expected}
(out / "expected.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1", **extra}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder with kerasrs_model.py, model.keras, movies.tsv and expected.json."""
    folder = tmp_path_factory.mktemp("kerasrs_jax")
    (folder / "kerasrs_model.py").write_text(MODEL_MODULE, encoding="utf-8")
    env = _env(KERAS_BACKEND=BACKEND, JAX_PLATFORMS="cpu")
    env.pop("TF_USE_LEGACY_KERAS")  # the example runs Keras 3 alone
    arguments = [str(v) for v in (folder, USERS, MOVIES, PADDING, K)]
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, *arguments, ",".join(map(str, QUERIES))],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def _expected(trained: Path, depth: int = K) -> list[list[str]]:
    info = json.loads((trained / "expected.json").read_text(encoding="utf-8"))
    assert info["backend"] == BACKEND
    return info["expected"][str(depth)]


@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real `scann-export` on the `.keras` file: a tree index that searches every leaf
    and reorders every candidate, so its answers are exact."""
    base = tmp_path_factory.mktemp("kerasrs_exports") / MODEL
    done = subprocess.run(
        [
            console_script("scann-export"),
            f"--output={base}",
            f"--model-name={MODEL}",
            f"--query-model={trained / 'model.keras'}",
            f"--keras-module={trained / 'kerasrs_model.py'}",
            "--query-submodel=user_embedding",
            "--candidate-layer=candidate_embedding",
            f"--candidate-ids-map={trained / 'movies.tsv'}",
            "--index=tree",
            "--num-leaves=8",
            "--num-leaves-to-search=8",
            f"--num-reordering-candidates={MOVIES}",
            "--dimensions-per-block=2",
            "--eval-queries=30",
            "--latency-queries=5",
            "--no-verify",
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


def test_the_export_read_the_keras_file_whole(exported: Path) -> None:
    manifest = json.loads((exported / "1" / "assets.extra" / "scann_manifest.json").read_text())
    assert manifest["training"]["keras"] == "model"
    assert manifest["training"]["query_submodel"] == "user_embedding"
    assert manifest["training"]["candidate_layer"] == "candidate_embedding"
    # Row 0 and the padding rows have no title: only the mapped ids are candidates.
    assert manifest["num_candidates"] == MOVIES
    assert manifest["training"]["candidate_rows_skipped"] == PADDING  # row 0, rows past MOVIES
    assert manifest["query_key"] == {
        "dtype": "int64",
        "tower_dtype": "int32",
        "min_id": 0,
        "max_id": USERS + PADDING - 1,
    }


def test_served_top_k_is_keras_rs_brute_force(served: ServerProcess, trained: Path) -> None:
    from scann_serving.client import RetrievalClient

    with RetrievalClient(served.target, model=MODEL) as client:
        assert client.retrieve(QUERIES).identifiers.tolist() == _expected(trained)
        deeper = client.retrieve([str(q) for q in QUERIES], 2 * K).identifiers.tolist()
        assert deeper == _expected(trained, 2 * K)


def test_the_official_stubs_get_the_same_titles(served: ServerProcess, trained: Path) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(np.asarray(QUERIES, np.int64)))
    with served.channel() as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
    identifiers = tf.make_ndarray(response.outputs["identifiers"])
    assert [[i.decode("utf-8") for i in row] for row in identifiers] == _expected(trained)
