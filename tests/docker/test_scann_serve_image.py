"""The scann-serve image's entrypoint starts a REAL scann-serve that answers queries.

Run here with the image's ENV (from docker/scann-serve.Dockerfile) and the tiny real ScaNN
model: with the exact flags of the Kubernetes overlay and its ConfigMap files, queried with
tensorflow-serving-api's stubs (the independent reference client) and checked against brute
force; and through BUILD.md's smoke test script (the plain contract, queried by scann-query).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from _docker_support import (
    DOCKERFILES,
    image_entrypoint,
    local_smoke_command,
    one,
    parse_config,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serve_helpers import free_port

STARTUP_TIMEOUT_S = 180
DRAIN_FOR_TEST_S = 2


@pytest.fixture(scope="session")
def scann_serve(scann_serve_help: str) -> str:
    """The scann-serve executable; session-scoped so a missing server skips before the
    (session-scoped) tiny model is built."""
    return str(shutil.which("scann-serve"))


class Server:
    """A server process started through the image's entrypoint script."""

    def __init__(self, env: Mapping[str, str], args: Sequence[str], log: Path) -> None:
        script, image_env = image_entrypoint(DOCKERFILES["scann-serve"])
        self.grpc_port, self.rest_port = free_port(), free_port()
        argv = [str(script), *args, f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}"]
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, env={**os.environ, **image_env, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")

    def wait_serving(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited:\n{self.log.read_text()[-3000:]}"
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        raise AssertionError(
            f"not SERVING after {STARTUP_TIMEOUT_S}s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def start(env: Mapping[str, str], args: Sequence[str] = ()) -> Server:
        server = Server(env, args, tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        server.wait_serving()
        return server

    yield start
    for server in servers:
        server.stop()


def _predict(
    server: Server, model: str, signature: str, queries: list[str], k: int | None = None
) -> np.ndarray:
    """Identifiers `[batch, k]` from a Predict call with tensorflow-serving-api's stubs."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(queries, dtype=tf.string))
    if k is not None:
        request.inputs["k"].CopyFrom(tf.make_tensor_proto(k, dtype=tf.int32))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    response = stub.Predict(request, timeout=30)
    ids = np.array([s.decode() for s in response.outputs["identifiers"].string_val])
    return ids.reshape(len(queries), -1)


def _assert_answers_like_brute_force(server: Server, model: str, tiny_spec: Any) -> None:
    queries = ["1", "7"]
    ids = _predict(server, model, "serving_default", queries)
    np.testing.assert_array_equal(ids, tiny_spec.brute_force(queries, k=ids.shape[1])[0])
    status = requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/{model}", timeout=10)
    assert status.status_code == 200
    assert "AVAILABLE" in {v["state"] for v in status.json()["model_version_status"]}


def _overlay_files(
    rendered: dict[str, Any], tmp_path: Path, model_root: Path
) -> tuple[dict[str, str], list[str]]:
    """The scann-serve overlay's env and args, with its ConfigMap written under tmp_path and
    the in-cluster paths (/etc/scann-serving, /models) mapped to local directories."""
    docs = rendered["scann-serve"]
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    for key, text in config_map["data"].items():
        (config_dir / key).write_text(text.replace(f'"{mounts["models"]}/', f'"{model_root}/'))
    args = [a.replace(mounts["config"], str(config_dir)) for a in container["args"]]
    env = {e["name"]: e["value"] for e in container["env"]}
    env["MODEL_BASE_PATH"] = str(model_root)
    return env, args


def test_overlay_flags_and_configmaps_serve_and_drain(
    scann_serve: str,
    start_server: Any,
    rendered: Any,
    tiny_model_base: Path,
    tiny_spec: Any,
    tmp_path: Path,
) -> None:
    """The exact Kubernetes args (model config, batching, monitoring, drain) on a real server."""
    env, args = _overlay_files(rendered, tmp_path, tiny_model_base.parent)
    server = start_server(env, [*args, f"--drain_grace_seconds={DRAIN_FOR_TEST_S}"])
    _assert_answers_like_brute_force(server, env["MODEL_NAME"], tiny_spec)
    # With --enable_batching, `retrieve` (scalar k) must still work: TF Serving's batching
    # refuses it, which is why only this overlay enables batching.
    ids = _predict(server, env["MODEL_NAME"], "retrieve", ["3", "4"], k=3)
    np.testing.assert_array_equal(ids, tiny_spec.brute_force(["3", "4"], k=3)[0])
    monitoring = next(a for a in args if a.startswith("--monitoring_config_file="))
    config = parse_config("monitoring", Path(monitoring.split("=", 1)[1]).read_text())
    metrics = requests.get(
        f"http://127.0.0.1:{server.rest_port}{config.prometheus_config.path}", timeout=10
    )
    assert metrics.status_code == 200 and "# TYPE" in metrics.text
    # SIGTERM (what the kubelet sends after preStop): exits cleanly within its drain budget,
    # which is what terminationGracePeriodSeconds is sized from: the server itself says when
    # it had to stop with calls still in flight.
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=DRAIN_FOR_TEST_S + 30)
    log = server.log.read_text()
    assert code == 0, log[-2000:]
    assert "grace period over" not in log, log[-2000:]


def test_build_md_local_smoke_test_passes(scann_serve: str, tiny_model_base: Path) -> None:
    """BUILD.md's `docker/smoke_test.sh --runner local ...` command, on the tiny model and
    with the image's ENV: the plain tensorflow/serving contract (MODEL_NAME, MODEL_BASE_PATH,
    extra args) through the entrypoint, scann-query over gRPC, REST :predict, SIGTERM."""
    if shutil.which("scann-query") is None:
        pytest.skip("scann-query (client) is not installed")
    query_help = subprocess.run(["scann-query", "--help"], capture_output=True, timeout=60)
    if query_help.returncode != 0:
        pytest.skip("scann-query is not runnable yet")
    _, image_env = image_entrypoint(DOCKERFILES["scann-serve"])
    argv = [*local_smoke_command(tiny_model_base), "--timeout", str(STARTUP_TIMEOUT_S)]
    run = subprocess.run(
        argv,
        env={**os.environ, **image_env},
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S + 60,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "smoke_test: PASSED" in run.stdout


@pytest.mark.slow
def test_build_md_fresh_export_smoke_test_passes(scann_serve: str) -> None:
    """BUILD.md's end-to-end local smoke test: export_entrypoint.sh writes a fresh model
    (small synthetic dataset), serving_entrypoint.sh serves it, the client queries it."""
    if shutil.which("scann-query") is None or shutil.which("scann-export") is None:
        pytest.skip("scann-query and scann-export are needed")
    argv = [*local_smoke_command(), "--timeout", str(STARTUP_TIMEOUT_S)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S + 600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "scann-export: wrote" in run.stdout and "smoke_test: PASSED" in run.stdout
