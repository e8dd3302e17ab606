"""An own string tower that is a lookup table, end to end: a Keras 3 StringLookup + Embedding
tower exported with `model.export()` → `scann-export --query-model` → `scann-serve`.

The export finds the tower's vocabulary (non-ASCII keys included) in the SavedModel, writes
it as the native bundle's string table and proves it in the fresh process; `--backend=auto`
then serves every signature natively, with the TensorFlow backend's top-k for known,
unknown and empty keys.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import ServerProcess, console_script, predict_request, run_command
from tower_helpers import DIM, keras3_lookup_tower

MODEL = "own"
NUM_ITEMS = 200
#: Known keys (non-ASCII among them), keys the vocabulary lacks, and the empty key.
QUERIES = ["u1", "Ünïcödé", "用户-3", "emoji-😀", "case", "Case", "nobody", "ÜNÏCÖDÉ", ""]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The version `scann-export` writes for the Keras 3 tower, and what it printed."""
    folder = tmp_path_factory.mktemp("own-table")
    tower = keras3_lookup_tower(folder / "tower")
    rng = np.random.default_rng(11)
    np.save(folder / "items.npy", rng.standard_normal((NUM_ITEMS, DIM)).astype(np.float32))
    (folder / "ids.txt").write_text("".join(f"item-{i}\n" for i in range(NUM_ITEMS)))
    base = folder / MODEL
    done = run_command(
        console_script("scann-export"),
        f"--output={base}",
        f"--model-name={MODEL}",
        f"--query-model={tower}",
        "--query-model-signature=serve",
        f"--candidates={folder / 'items.npy'}",
        f"--candidate-ids={folder / 'ids.txt'}",
        "--index=brute-force",
        "--eval-queries=20",
        "--latency-queries=5",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return base, done.stdout


def test_the_export_writes_the_tower_as_a_verified_string_table(
    exported: tuple[Path, str],
) -> None:
    base, printed = exported
    manifest = json.loads((base / "1" / "assets.extra" / "scann_manifest.json").read_text())
    native = manifest["native"]
    assert native["tower"] == "string_lookup", native.get("tower_reason")
    assert {"serving_default", "retrieve", "retrieve_with_exclusions"} <= set(native["signatures"])
    assert manifest["verification"]["native"]["identical_identifiers"] is True
    assert "query key string; native query tower: string table" in printed


def _answers(server: ServerProcess, queries: list[str], k: int) -> tuple[list[Any], np.ndarray]:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        reply = stub.Predict(predict_request(MODEL, queries, k=k), timeout=30)
    identifiers = list(reply.outputs["identifiers"].string_val)
    return identifiers, np.asarray(reply.outputs["scores"].float_val, np.float32)


def _status_message(server: ServerProcess) -> str:
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    with server.channel() as channel:
        reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    return str(reply.model_version_status[0].status.error_message)


def test_auto_serves_retrieve_natively_with_the_tensorflow_top_k(
    exported: tuple[Path, str],
) -> None:
    base, _ = exported
    with ExitStack() as stack:
        auto = stack.enter_context(
            ServerProcess(model_name=MODEL, model_base_path=base, rest=False)
        )
        tf_server = stack.enter_context(
            ServerProcess(
                "--backend=tensorflow", model_name=MODEL, model_base_path=base, rest=False
            )
        )
        reason = _status_message(auto)
        assert reason.startswith("--backend=auto") and "native" in reason, reason
        assert _status_message(tf_server).startswith("--backend=tensorflow")
        for k in (1, 7, 50):
            native = _answers(auto, QUERIES, k)
            tensorflow = _answers(tf_server, QUERIES, k)
            assert len(native[0]) == len(QUERIES) * k
            assert native[0] == tensorflow[0], f"k={k}: identifiers differ"
            np.testing.assert_allclose(native[1], tensorflow[1], rtol=1e-4, atol=1e-4)
            # The keys the vocabulary lacks (case variant and empty key too) share one row.
            rows = [native[0][i * k : (i + 1) * k] for i in range(len(QUERIES))]
            unknown = [rows[QUERIES.index(q)] for q in ("nobody", "ÜNÏCÖDÉ", "")]
            assert unknown[0] == unknown[1] == unknown[2]
