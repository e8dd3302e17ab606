"""Health follows readiness; SIGTERM drains: NOT_SERVING at once, in-flight calls finish,
new calls are refused, exit 0 within the grace period."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from serve_helpers import GRPC_SERVER_MODES, ServerProcess, predict_request
from tensorflow_serving.apis import prediction_service_pb2_grpc

MODEL = "retrieval"
GRACE_SECONDS = 10.0
CALL_TIMEOUT = 30.0
#: The server still admits calls this long after SIGTERM (scann-serve's DRAIN_ADMIT_SECONDS).
DRAIN_ADMIT_SECONDS = 0.05


def _request(rows: int) -> Any:
    return predict_request(MODEL, ["1"] * rows)


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
        while (first := server.health()) == "UNREACHABLE" and time.monotonic() < deadline:
            time.sleep(0.01)
        # From the very first answer on: grpc's health servicer starts out SERVING, so a
        # server that forgot to say otherwise would invite calls before any model loaded.
        seen = [first] + [server.health() for _ in range(20)]
        assert set(seen) == {"NOT_SERVING"}, seen
        shutil.copytree(tiny_model_base / "1", base / ".staging")
        (base / ".staging").rename(base / "1")
        server.wait_serving(timeout=60)
    finally:
        assert server.stop() == 0


@dataclass(frozen=True)
class _Outcome:
    started: float  # time.monotonic() when the request was handed to gRPC
    finished: float
    code: str  # "OK" or the status name
    details: str = ""


class _Clients:
    """Daemon threads calling Predict in a loop until `stop()` (also on a failed test)."""

    def __init__(self, server: ServerProcess, count: int) -> None:
        self.outcomes: list[_Outcome] = []
        self._server = server
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> _Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CALL_TIMEOUT + 5)
        assert not any(t.is_alive() for t in self._threads), "a client thread did not stop"

    def _run(self) -> None:
        request = _request(2000)
        with self._server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    stub.Predict(request, timeout=CALL_TIMEOUT)
                    outcome = _Outcome(started, time.monotonic(), "OK")
                except grpc.RpcError as exc:
                    outcome = _Outcome(
                        started, time.monotonic(), exc.code().name, exc.details() or ""
                    )
                self.outcomes.append(outcome)

    def wait_for_ok(self, count: int, timeout: float) -> None:
        """Polls until `count` calls have succeeded (the server is really taking load)."""
        deadline = time.monotonic() + timeout
        while sum(o.code == "OK" for o in self.outcomes) < count:
            assert time.monotonic() < deadline, (
                f"fewer than {count} calls succeeded: {self.outcomes[:3]}"
            )
            time.sleep(0.05)


def _wait_not_serving(server: ServerProcess, timeout: float) -> float:
    """Polls health until it leaves SERVING; returns when that was seen."""
    deadline = time.monotonic() + timeout
    while (health := server.health()) == "SERVING":
        assert time.monotonic() < deadline, f"health still SERVING {timeout}s after SIGTERM"
        time.sleep(0.01)
    assert health in ("NOT_SERVING", "UNREACHABLE"), health
    return time.monotonic()


@pytest.mark.parametrize("mode", GRPC_SERVER_MODES)
def test_sigterm_drains_in_flight_and_refuses_new(tiny_model_base: Path, mode: str) -> None:
    """Every assertion follows from causality, never from how fast the machine is: a call
    the server admitted must succeed, and a call sent after health left SERVING (plus the
    server's admit window) must be refused."""
    server = ServerProcess(
        f"--drain_grace_seconds={GRACE_SECONDS}",
        f"--grpc_server_mode={mode}",
        model_name=MODEL,
        model_base_path=tiny_model_base,
    )
    try:
        server.start()
        assert server.process is not None
        with _Clients(server, 4) as clients:
            clients.wait_for_ok(8, timeout=60)
            sent = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            draining_seen = _wait_not_serving(server, timeout=10)
            code = server.process.wait(GRACE_SECONDS + 30)
    finally:
        server.kill()
    assert code == 0, server.logs
    assert "draining" in server.logs
    outcomes = sorted(clients.outcomes, key=lambda o: o.started)
    assert any(o.code == "OK" and o.started < sent for o in outcomes)
    # A call the server admitted finishes OK; one it refused says why. A connection error is
    # only acceptable for calls sent once the drain had begun (the process exits after it).
    wrong = [
        o
        for o in outcomes
        if o.code != "OK"
        and not (o.code == "UNAVAILABLE" and ("shutting down" in o.details or o.started > sent))
    ]
    assert not wrong, wrong[:3]
    refused_after = draining_seen + DRAIN_ADMIT_SECONDS
    late = [o for o in outcomes if o.started > refused_after and o.code != "UNAVAILABLE"]
    assert not late, f"calls sent after the drain began were not refused: {late[:3]}"


def test_health_starts_not_serving_for_every_service() -> None:
    from grpc_health.v1 import health_pb2
    from scann_serving.server._wire import SERVICE_NAMES, initial_health

    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert initial_health() == {name: not_serving for name in ("", *SERVICE_NAMES)}
