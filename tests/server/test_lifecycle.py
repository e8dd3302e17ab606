"""Health follows readiness; SIGTERM drains: NOT_SERVING at once, in-flight calls finish,
new calls are refused, exit 0 within the grace period."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serve_helpers import GRPC_SERVER_MODES, ServerProcess
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

MODEL = "retrieval"


def _request(rows: int) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(np.asarray([b"1"] * rows, dtype=object)))
    return request


def test_health_reports_each_service(server: ServerProcess) -> None:
    assert server.health() == "SERVING"
    assert server.health("tensorflow.serving.PredictionService") == "SERVING"


def test_not_serving_until_a_version_exists(tmp_path: Path, tiny_model_base: Path) -> None:
    import shutil

    base = tmp_path / MODEL
    base.mkdir()
    server = ServerProcess(
        "--file_system_poll_wait_seconds=1", model_name=MODEL, model_base_path=base
    )
    try:
        server.start(wait=False)
        deadline = time.monotonic() + 60
        while server.health() == "UNREACHABLE" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.health() == "NOT_SERVING"
        shutil.copytree(tiny_model_base / "1", base / ".staging")
        (base / ".staging").rename(base / "1")
        server.wait_serving(timeout=60)
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("mode", GRPC_SERVER_MODES)
def test_sigterm_drains_in_flight_and_refuses_new(tiny_model_base: Path, mode: str) -> None:
    server = ServerProcess(
        "--drain_grace_seconds=10",
        f"--grpc_server_mode={mode}",
        model_name=MODEL,
        model_base_path=tiny_model_base,
    )
    server.start()
    outcomes: list[tuple[float, Any]] = []
    stop = threading.Event()

    def client() -> None:
        with server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                started = time.monotonic()
                try:
                    stub.Predict(_request(2000), timeout=30)
                    outcomes.append((started, "OK"))
                except grpc.RpcError as exc:
                    outcomes.append((started, exc.code()))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    assert server.process is not None
    sent = time.monotonic()
    server.process.send_signal(15)
    health = server.health()
    assert health in ("NOT_SERVING", "UNREACHABLE")
    code = server.process.wait(20)
    stop.set()
    for thread in threads:
        thread.join()
    assert code == 0, server.logs
    assert time.monotonic() - sent < 12
    before = [outcome for started, outcome in outcomes if started < sent - 0.05]
    assert before and all(outcome == "OK" for outcome in before), before
    after = {outcome for started, outcome in outcomes if started > sent + 0.5}
    assert after <= {grpc.StatusCode.UNAVAILABLE}, after
    assert "draining" in server.logs
