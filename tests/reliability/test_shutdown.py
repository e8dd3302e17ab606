"""Promise 5 — SIGTERM under load drains cleanly.

A scann-serve of its own (it is stopped by the test) takes calls of 256 queries from
several official-stub clients; each request is built before its start time is taken, so
"started before SIGTERM" means handed to gRPC before the signal. Then it gets SIGTERM.
Promised: every call the server admitted succeeds (some are in flight when the signal
arrives) and every call it refused says it is shutting down; health leaves SERVING; new
calls (after the server's 50 ms admit window) are refused with UNAVAILABLE; the process
exits 0 without running out of --drain_grace_seconds.
Run on each backend (`backend` fixture): the calls in flight at the signal are computed by
it, and the TensorFlow backend's work runs on TensorFlow's own threads.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from _rel_support import Call, Load, assert_backend, prediction_stub
from serve_helpers import ServerProcess, predict_request

MODEL = "retrieval"
GRACE_SECONDS = 8.0
#: Health must leave SERVING within this long after the signal (polled; on a quiet machine
#: it takes a few ms, the bound only stops a broken server from hanging the test).
HEALTH_SECONDS = 10.0
#: scann-serve still admits calls that reach it this soon after SIGTERM (they were sent
#: before it; DRAIN_ADMIT_SECONDS in the server): "new" calls are the ones after that.
ADMIT_SECONDS = 0.05


@dataclass(frozen=True)
class Shutdown:
    """What was seen around one SIGTERM."""

    calls: list[Call]
    signalled: float
    not_serving_after: float
    probes: list[tuple[float, str]]
    exit_code: int
    exit_after: float
    log_tail: str


def _probe(server: ServerProcess) -> tuple[float, str]:
    """A brand-new call on a brand-new channel: (when it started, its status name)."""
    request = predict_request(MODEL, ["1"])
    with server.channel() as channel:
        started = time.monotonic()
        try:
            prediction_stub(channel).Predict(request, timeout=2)
        except grpc.RpcError as exc:
            return started, exc.code().name
    return started, "OK"


def _sigterm_under_load(base: Path, backend: str, clients: int, load_seconds: float) -> Shutdown:
    server = ServerProcess(
        f"--drain_grace_seconds={GRACE_SECONDS}",
        f"--backend={backend}",
        model_name=MODEL,
        model_base_path=base,
    )
    try:
        server.start()
        assert server.process is not None
        with server.channel() as channel:
            assert_backend(channel, MODEL, backend)
        queries = [str(u) for u in range(1, 51)]
        with Load(server.target, MODEL, clients, queries, batch=256, stubs_only=True) as load:
            load.wait_for_calls(ok=clients * 2, timeout=60)
            time.sleep(load_seconds)  # the load's length, not a synchronisation
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            deadline = signalled + HEALTH_SECONDS
            while (health := server.health()) == "SERVING":
                assert time.monotonic() < deadline, (
                    f"health SERVING {HEALTH_SECONDS}s after SIGTERM"
                )
                time.sleep(0.01)
            not_serving_after = time.monotonic() - signalled
            assert health in ("NOT_SERVING", "UNREACHABLE"), health
            probes: list[tuple[float, str]] = []
            while server.process.poll() is None and len(probes) < 20:
                probes.append(_probe(server))
            try:
                exit_code = server.process.wait(timeout=GRACE_SECONDS + 30)
            except subprocess.TimeoutExpired:
                exit_code = -999
            exit_after = time.monotonic() - signalled
        calls = sorted(load.calls, key=lambda c: c.started)
    finally:
        server.kill()
    tail = server.logs[-1500:]
    return Shutdown(calls, signalled, not_serving_after, probes, exit_code, exit_after, tail)


def _check(run: Shutdown) -> str:
    """Causal checks only: what the server admitted succeeds, what it refused says why, and
    what was sent after health left SERVING (plus the admit window) is refused."""
    before = [c for c in run.calls if c.started < run.signalled]
    assert any(c.code == "OK" for c in before), "no call succeeded before SIGTERM"
    in_flight = [c for c in before if c.finished > run.signalled]
    # Refused calls carry the drain message; a connection error is only possible for calls
    # sent after the signal (the process closes its sockets when it exits).
    failed = [
        c
        for c in run.calls
        if c.code != "OK"
        and not (
            c.code == "UNAVAILABLE" and ("shutting down" in c.message or c.started > run.signalled)
        )
    ]
    assert not failed, f"{len(failed)} calls failed other than by a drain refusal: {failed[:2]}"
    # the server began draining before health read NOT_SERVING; it admits calls 50 ms more
    refused_after = run.signalled + run.not_serving_after + ADMIT_SECONDS
    later = [c for c in run.calls if c.started > refused_after]
    probes = [code for started, code in run.probes if started > refused_after]
    wrong = [c for c in later if c.code != "UNAVAILABLE"] + [
        p for p in probes if p != "UNAVAILABLE"
    ]
    assert not wrong, f"calls made after the drain began were not refused UNAVAILABLE: {wrong[:3]}"
    assert run.exit_code == 0, f"scann-serve exited {run.exit_code}:\n{run.log_tail}"
    assert "grace period over" not in run.log_tail, run.log_tail
    return (
        f"{len(before)} calls before SIGTERM ({len(in_flight)} in flight), 0 failed; "
        f"NOT_SERVING after {run.not_serving_after * 1000:.0f} ms; {len(later) + len(probes)} "
        f"later calls all UNAVAILABLE; exit 0 after {run.exit_after:.1f}s (grace {GRACE_SECONDS}s)"
    )


def test_sigterm_under_load(tiny_model_base: Path, backend: str) -> None:
    """Fast variant: 4 clients, SIGTERM after 2 s of load."""
    run = _sigterm_under_load(tiny_model_base, backend, clients=4, load_seconds=2.0)
    print(_check(run))


@pytest.mark.slow
def test_sigterm_under_load_soak(tiny_model_base: Path, backend: str) -> None:
    """Soak variant: 8 clients, SIGTERM after 30 s of load."""
    print(_check(_sigterm_under_load(tiny_model_base, backend, clients=8, load_seconds=30.0)))
