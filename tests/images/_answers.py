"""What the image tests send and expect: the pod's ports, the warmup requests and the
exporter's answers to them, the three ways of asking, and client load.

Requests are sent exactly as a user would: TF Serving's own stubs, `RetrievalClient`, and
REST JSON, through the ports the played Deployment publishes.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import requests
from _podman import inspect, podman
from grpc_health.v1 import health_pb2, health_pb2_grpc

MODEL = "retrieval"


def tfrecords(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file (length, crc, data, crc), without TensorFlow."""
    data, offset = path.read_bytes(), 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        yield data[offset + 12 : offset + 12 + length]
        offset += 12 + length + 4


@dataclass
class Expected:
    """One warmup request of the version and the exporter's check's answer to it."""

    request: Any
    signature: str
    identifiers: list[list[str]]
    scores: list[list[float]]


@dataclass
class Pod:
    """The played Deployment: its one server container and the published ports."""

    yaml_path: Path
    container: str
    grpc_port: int
    rest_port: int
    poll_seconds: float
    drain_seconds: float
    grace_seconds: int
    pod: str = ""
    started: float = 0.0  # seconds from container start to SERVING

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def health(self) -> str:
        """grpc.health.v1 Check("") as the readinessProbe asks it, or UNREACHABLE."""
        with grpc.insecure_channel(self.target) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=2
                )
            except grpc.RpcError:
                return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def running(self) -> bool:
        return bool(inspect(self.container)["State"]["Running"])

    def logs(self) -> str:
        proc = podman("logs", self.container, check=False)
        return (proc.stdout + proc.stderr)[-4000:]


def _ndarray(proto: Any) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(tf.make_ndarray(proto))


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode(), otypes=[object])(array).tolist()
    return array.tolist()


def via_stubs(pod: Pod, case: Expected) -> tuple[list[list[str]], np.ndarray, int]:
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.CopyFrom(case.request)
    request.model_spec.name = MODEL
    request.model_spec.ClearField("version")
    with grpc.insecure_channel(pod.target) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
    ids = _jsonable(_ndarray(reply.outputs["identifiers"]))
    return ids, _ndarray(reply.outputs["scores"]), int(reply.model_spec.version.value)


def via_rest(pod: Pod, case: Expected) -> tuple[list[list[str]], np.ndarray]:
    body: dict[str, Any] = {
        "signature_name": case.signature,
        "inputs": {k: _jsonable(_ndarray(v)) for k, v in case.request.inputs.items()},
    }
    reply = requests.post(f"{pod.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    outputs = reply.json()["outputs"]
    return outputs["identifiers"], np.asarray(outputs["scores"])


def via_client(client: Any, case: Expected) -> tuple[list[list[str]], np.ndarray] | None:
    inputs = {k: _ndarray(v) for k, v in case.request.inputs.items()}
    if case.signature == "search_embedding":
        result = client.search(inputs["embedding"])
    elif case.signature in ("serving_default", "retrieve", "retrieve_with_exclusions"):
        queries = [q.decode() for q in inputs["query"].reshape(-1)]
        k = int(inputs["k"]) if "k" in inputs else None
        exclude = _jsonable(inputs["exclude"]) if "exclude" in inputs else None
        result = client.retrieve(queries, k, exclude=exclude)
    else:
        return None  # a signature the client has no method for
    return result.identifiers.tolist(), result.scores


class Load:
    """Client threads calling the pod until stopped; every failure is kept with its time."""

    def __init__(self, pod: Pod, threads: int = 2) -> None:
        from scann_serving.client import RetrievalClient

        self._stop = threading.Event()
        self.calls = 0
        self.versions: list[int] = []
        self.failures: list[tuple[float, float, str]] = []  # (sent, failed, error)
        self._lock = threading.Lock()
        self._clients = [RetrievalClient(pod.target, model=MODEL) for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._run, args=(c,), name=f"image-load-{i}")
            for i, c in enumerate(self._clients)
        ]
        for t in self._threads:
            t.start()

    def _run(self, client: Any) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                result = client.retrieve(["1", "42"], timeout=30)
            except Exception as exc:  # every error counts, whatever its class
                with self._lock:
                    self.failures.append((sent, time.monotonic(), repr(exc)))
                continue
            with self._lock:
                self.calls += 1
                self.versions.append(int(result.model_version or 0))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        for c in self._clients:
            c.close()
