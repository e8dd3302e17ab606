"""Helpers for the reliability tests: requests, status, metrics, publishing and load.

Everything here talks to a real `scann-serve` subprocess through the official
`tensorflow_serving.apis` stubs (or plain HTTP); nothing is faked.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from serve_helpers import predict_request

MANIFEST = Path("assets.extra") / "scann_manifest.json"
WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"
CALL_TIMEOUT = 10.0

# The shared server (conftest.shared_server): poll interval and request limits.
POLL_SECONDS = 1
MAX_BATCH = 4096
MAX_MESSAGE = 1024 * 1024
MUTABLE_MODELS = ("rollover", "rollback", "broken", "atomic")

#: The --backend values every backend-dependent promise is checked on: the servers of these
#: tests run once per backend (the tiny model's native bundle covers all its signatures, so
#: `auto` would pick native and leave the TensorFlow backend unchecked).
BACKENDS = ("native", "tensorflow")

#: For a test whose promise the backend cannot change (what the exporter leaves on disk,
#: limits the gRPC transport enforces): the shared server's native variant only, so the
#: suite does not pay twice for the same check.
backend_independent = pytest.mark.parametrize("shared_server", [BACKENDS[0]], indirect=True)


@dataclass(frozen=True)
class SharedServer:
    """The shared server and the base path of each model it serves."""

    process: Any  # serve_helpers.ServerProcess
    bases: dict[str, Path]
    channel: Any
    backend: str  # the --backend it runs with (one of BACKENDS)

    @property
    def target(self) -> str:
        return self.process.target

    @property
    def rest_url(self) -> str:
        return self.process.rest_url


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = ""
) -> Any:
    """Polls `predicate` until it returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)


# --- requests --------------------------------------------------------------------------
def prediction_stub(channel: Any) -> Any:
    """tensorflow_serving's PredictionServiceStub."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def identifiers(response: Any) -> list[list[str]]:
    """The `identifiers` output of a PredictResponse as rows of str."""
    proto = response.outputs["identifiers"]
    dims = [d.size for d in proto.tensor_shape.dim]
    flat = [v.decode() for v in proto.string_val]
    return [flat[i * dims[1] : (i + 1) * dims[1]] for i in range(dims[0])]


# --- status and metrics -----------------------------------------------------------------
@dataclass(frozen=True)
class VersionState:
    """One entry of GetModelStatus."""

    version: int
    state: str
    error_code: int
    error_message: str


def model_status(channel: Any, model: str) -> dict[int, VersionState]:
    """GetModelStatus of `model` through the official ModelService stub, by version."""
    from tensorflow_serving.apis import (
        get_model_status_pb2,
        model_service_pb2_grpc,
    )

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        request, timeout=CALL_TIMEOUT
    )
    states = get_model_status_pb2.ModelVersionStatus.State
    return {
        s.version: VersionState(
            s.version, states.Name(s.state), s.status.error_code, s.status.error_message
        )
        for s in reply.model_version_status
    }


def assert_backend(channel: Any, model: str, backend: str) -> None:
    """Every AVAILABLE version of `model` runs on `backend`, as GetModelStatus reports it
    (the status message of an AVAILABLE version is the server's reason for its backend)."""
    available = {v: s for v, s in model_status(channel, model).items() if s.state == "AVAILABLE"}
    assert available, f"{model} has no AVAILABLE version"
    wrong = {
        v: s.error_message
        for v, s in available.items()
        if not s.error_message.startswith(f"--backend={backend}:")
    }
    assert not wrong, f"{model}: versions not on the {backend} backend: {wrong}"


def metrics_text(rest_url: str) -> str:
    """The Prometheus page (no monitoring config file given to the server)."""
    reply = requests.get(f"{rest_url}/monitoring/prometheus/metrics", timeout=CALL_TIMEOUT)
    reply.raise_for_status()
    return reply.text


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


# --- publishing -----------------------------------------------------------------------
def _fsync_tree(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_copy(
    source: Path, base: Path, version: int, damage: Callable[[Path], None] | None = None
) -> Path:
    """Publishes a copy of version dir `source` as `base/version`, the contract's way.

    The copy is built in a hidden staging directory, optionally damaged there by
    `damage(staging)` (to publish a broken version), fsynced and renamed into place, so
    the server never sees a half-written numeric directory.
    """
    staging = base / f".staging-reliability-{uuid.uuid4().hex}"
    shutil.copytree(source, staging)
    if damage is not None:
        damage(staging)
    _fsync_tree(staging)
    target = base / str(version)
    os.rename(staging, target)
    return target


def latest_version(base: Path) -> int:
    """The highest numeric version directory under `base` (0 when none)."""
    numbers = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
    return max(numbers, default=0)


# --- load ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One call made by a load client."""

    client: int
    started: float  # time.monotonic()
    finished: float
    code: str  # "OK" or the gRPC status name
    version: int | None = None
    query: str = ""
    identifiers: tuple[str, ...] = ()
    message: str = ""


@dataclass
class Load:
    """`clients` threads calling Predict in a loop until `stop()`; every call is recorded.

    Even-numbered clients use the official stubs; odd-numbered ones use the project's
    `RetrievalClient` with retries disabled (a retried failure would hide a failed call),
    unless `stubs_only`.
    """

    target: str
    model: str
    clients: int
    queries: list[str]
    batch: int = 1
    credentials: Any = None
    stubs_only: bool = False
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        """Starts the client threads."""
        for number in range(self.clients):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> list[Call]:
        """Stops the clients and returns every call they made."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CALL_TIMEOUT + 5)
        return sorted(self.calls, key=lambda c: c.started)

    def wait_for_calls(self, *, ok: int, timeout: float) -> None:
        """Polls until `ok` calls have succeeded: the server is really under this load."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                done = sum(call.code == "OK" for call in self.calls)
                sample = self.calls[:3]
            if done >= ok:
                return
            assert time.monotonic() < deadline, f"{done} of {ok} calls succeeded: {sample}"
            time.sleep(0.05)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _uses_stub(self, number: int) -> bool:
        return self.stubs_only or number % 2 == 0

    def _run(self, number: int) -> None:
        rng = np.random.default_rng(number)
        call = self._stub_call if self._uses_stub(number) else self._client_call
        with self._open(number) as handle:
            while not self._stop.is_set():
                picked = [str(q) for q in rng.choice(self.queries, self.batch)]
                # The official-stub request is built before the clock starts, so `started`
                # is when it is handed to gRPC.
                request = predict_request(self.model, picked) if call == self._stub_call else picked
                started = time.monotonic()
                try:
                    version, ids = call(handle, request)
                except grpc.RpcError as exc:
                    result = Call(
                        number, started, time.monotonic(), exc.code().name, message=exc.details()
                    )
                except Exception as exc:  # the project client raises its own tree
                    code = getattr(getattr(exc, "code", None), "name", type(exc).__name__)
                    result = Call(number, started, time.monotonic(), str(code), message=str(exc))
                else:
                    result = Call(
                        number, started, time.monotonic(), "OK", version, picked[0], tuple(ids)
                    )
                with self._lock:
                    self.calls.append(result)

    def _open(self, number: int) -> Any:
        if self._uses_stub(number):
            if self.credentials is not None:
                return grpc.secure_channel(self.target, self.credentials)
            return grpc.insecure_channel(self.target)
        from scann_serving.client import RetrievalClient

        return RetrievalClient(self.target, model=self.model, retry=None, timeout=CALL_TIMEOUT)

    def _stub_call(self, channel: Any, request: Any) -> tuple[int, list[str]]:
        reply = prediction_stub(channel).Predict(request, timeout=CALL_TIMEOUT)
        return int(reply.model_spec.version.value), identifiers(reply)[0]

    def _client_call(self, client: Any, picked: list[str]) -> tuple[int, list[str]]:
        result = client.retrieve(picked)
        return int(result.model_version), [str(i) for i in result.identifiers[0]]


def failures(calls: list[Call]) -> list[Call]:
    """The calls that did not answer OK."""
    return [c for c in calls if c.code != "OK"]


class HealthWatch:
    """Polls grpc.health.v1 Check("") on a thread and keeps every status it saw."""

    def __init__(self, channel: Any, interval: float = 0.1) -> None:
        self._channel = channel
        self._interval = interval
        self.seen: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        names = health_pb2.HealthCheckResponse.ServingStatus
        while not self._stop.is_set():
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                status = names.Name(reply.status)
            except grpc.RpcError as exc:
                status = f"error {exc.code().name}"
            self.seen.append((time.monotonic(), status))
            self._stop.wait(self._interval)

    @property
    def statuses(self) -> set[str]:
        """Every distinct status seen."""
        return {status for _, status in self.seen}
