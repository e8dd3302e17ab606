"""Promise 5 — SIGTERM under load drains cleanly.

A scann-serve of its own (it is stopped by the test) takes calls of 256 queries from
several official-stub clients; each request is built before its start time is taken, so
"started before SIGTERM" means handed to gRPC before the signal. Then it gets SIGTERM.
Promised: every call that started before the signal succeeds (some are in flight when it
arrives); health is NOT_SERVING at once; new calls (after the server's 50 ms admit window)
are refused with UNAVAILABLE; the process exits 0 within --drain_grace_seconds.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from _rel_support import Call, Load, predict_request, prediction_stub
from serve_helpers import ServerProcess

MODEL = "retrieval"
GRACE_SECONDS = 8.0
#: "At once": health must read NOT_SERVING within this long after the signal.
HEALTH_SECONDS = 0.5
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


def _sigterm_under_load(base: Path, clients: int, load_seconds: float) -> Shutdown:
    server = ServerProcess(
        f"--drain_grace_seconds={GRACE_SECONDS}", model_name=MODEL, model_base_path=base
    ).start()
    assert server.process is not None
    try:
        queries = [str(u) for u in range(1, 51)]
        load = Load(server.target, MODEL, clients, queries, batch=256, stubs_only=True).start()
        time.sleep(load_seconds)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        while (health := server.health()) == "SERVING":
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
        calls = load.stop()
    finally:
        server.kill()
    tail = server.logs[-1500:]
    return Shutdown(calls, signalled, not_serving_after, probes, exit_code, exit_after, tail)


def _check(run: Shutdown) -> str:
    before = [c for c in run.calls if c.started < run.signalled]
    assert before, "no call started before SIGTERM"
    in_flight = [c for c in run.calls if c.started < run.signalled < c.finished]
    assert in_flight, "no call was in flight when SIGTERM arrived; the test proved nothing"
    failed = [c for c in before if c.code != "OK"]
    assert not failed, (
        f"{len(failed)} of {len(before)} calls started before SIGTERM failed, "
        f"{[round((run.signalled - c.started) * 1000, 1) for c in failed]} ms before it: "
        f"{failed[:2]}"
    )
    assert run.not_serving_after <= HEALTH_SECONDS, (
        f"health still SERVING {run.not_serving_after:.2f}s after SIGTERM"
    )
    # the server began draining before health read NOT_SERVING; it admits calls 50 ms more
    refused_after = run.signalled + run.not_serving_after + ADMIT_SECONDS
    later = [c for c in run.calls if c.started > refused_after]
    probes = [code for started, code in run.probes if started > refused_after]
    wrong = [c for c in later if c.code != "UNAVAILABLE"] + [
        p for p in probes if p != "UNAVAILABLE"
    ]
    assert not wrong, f"calls made after the drain began were not refused UNAVAILABLE: {wrong[:3]}"
    assert run.exit_code == 0, f"scann-serve exited {run.exit_code}:\n{run.log_tail}"
    assert run.exit_after <= GRACE_SECONDS, (
        f"scann-serve exited {run.exit_after:.1f}s after SIGTERM; grace {GRACE_SECONDS}s:\n"
        f"{run.log_tail}"
    )
    return (
        f"{len(before)} calls before SIGTERM ({len(in_flight)} in flight), 0 failed; "
        f"NOT_SERVING after {run.not_serving_after * 1000:.0f} ms; {len(later) + len(probes)} "
        f"later calls all UNAVAILABLE; exit 0 after {run.exit_after:.1f}s (grace {GRACE_SECONDS}s)"
    )


def test_sigterm_under_load(tiny_model_base: Path) -> None:
    """Fast variant: 4 clients, SIGTERM after 2 s of load."""
    run = _sigterm_under_load(tiny_model_base, clients=4, load_seconds=2.0)
    print(_check(run))


@pytest.mark.slow
def test_sigterm_under_load_soak(tiny_model_base: Path) -> None:
    """Soak variant: 8 clients, SIGTERM after 30 s of load."""
    print(_check(_sigterm_under_load(tiny_model_base, clients=8, load_seconds=30.0)))
