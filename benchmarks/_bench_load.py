"""A cheap gRPC load generator: client processes sending pre-serialized requests.

The clients share the machine's cores with the server, so every microsecond a client
spends per call is taken from the server. To measure the server rather than the client,
each worker process sends the request *bytes* through a generic unary call (no protobuf
encoding of the request, no decoding of the response) and keeps its share of the calls
in flight with the sync stub's futures (a completion callback issues the next call).
Each worker reports its calls and its CPU seconds, so the report can say what the load
itself cost; the server's CPU seconds come from /proc.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREDICT = "/tensorflow.serving.PredictionService/Predict"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class LoadResult:
    """Calls per second, the CPU each side spent per call (microseconds), and the calls
    that ended in an error (the clients wait for every call, so none is cut off)."""

    qps: float
    calls: int
    client_cpu_us_per_call: float
    server_cpu_us_per_call: float | None
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "qps": self.qps,
            "calls": self.calls,
            "client_cpu_us_per_call": self.client_cpu_us_per_call,
            "server_cpu_us_per_call": self.server_cpu_us_per_call,
            "client_errors": self.errors,
        }


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and its threads (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _closed_loop(
    call: Any, payloads: list[bytes], in_flight: int, seconds: float
) -> tuple[int, int]:
    """`in_flight` calls always outstanding for `seconds`; returns (completed, failed) calls.

    A failed call is counted, not raised, so a run's numbers survive its errors; its slot
    stops issuing (an error storm must not spin)."""
    lock, finished = threading.Lock(), threading.Event()
    state = {"done": 0, "active": in_flight, "next": 0, "errors": 0}
    end = time.monotonic() + seconds

    def issue() -> None:
        with lock:
            i = state["next"] = state["next"] + 1
        call.future(payloads[i % len(payloads)], timeout=10).add_done_callback(done)

    def done(future: Any) -> None:
        failed = future.exception() is not None
        with lock:
            state["done"] += 1
            state["errors"] += failed
        if time.monotonic() < end and not failed:
            issue()
            return
        with lock:
            state["active"] -= 1
            if not state["active"]:
                finished.set()

    for _ in range(in_flight):
        issue()
    finished.wait()
    return state["done"] - state["errors"], state["errors"]


def _worker(
    target: str,
    method: str,
    payloads: list[bytes],
    in_flight: int,
    seconds: float,
    start: Any,
    ready: Any,
    results: Any,
) -> None:
    import grpc

    try:
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary(method)  # no serializers: bytes in, bytes out
            _closed_loop(call, payloads, in_flight, min(0.5, seconds))  # connect and warm
            ready.put(True)
            start.wait()
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            done, failed = _closed_loop(call, payloads, in_flight, seconds)
            after = resource.getrusage(resource.RUSAGE_SELF)
        used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
        results.put((done, failed, used, None))
    except Exception as exc:  # reported to the parent, which raises
        ready.put(False)
        results.put((0, 0, 0.0, repr(exc)))


def run_load(
    target: str,
    method: str,
    payloads: list[bytes],
    clients: int,
    seconds: float,
    processes: int = 2,
    server_pid: int | None = None,
) -> LoadResult:
    """Closed-loop load: `clients` calls in flight in total, spread over `processes` workers."""
    processes = max(1, min(processes, clients))
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    ctx = mp.get_context("spawn")  # grpc does not survive fork
    start, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker, args=(target, method, payloads, n, seconds, start, ready, results)
        )
        for n in shares
    ]
    try:
        for worker in workers:
            worker.start()
        for _ in workers:  # spawned, grpc imported, connected and warmed
            ready.get(timeout=120)
        before = process_cpu_seconds(server_pid) if server_pid else None
        start.set()
        outcomes = [results.get(timeout=seconds + 60) for _ in workers]
        after = process_cpu_seconds(server_pid) if server_pid else None
    finally:  # a worker that hung or lost its parent's queue must not outlive the run
        for worker in workers:
            if worker.is_alive():
                worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    problems = [err for *_, err in outcomes if err]
    if problems:
        raise RuntimeError(f"load worker failed: {problems[0]}")
    calls = sum(done for done, *_ in outcomes)
    failed = sum(errors for _, errors, *_ in outcomes)
    client_cpu = sum(used for _, _, used, _ in outcomes)
    per_call = 1e6 / max(calls, 1)
    server_cpu = None if before is None or after is None else (after - before) * per_call
    return LoadResult(calls / seconds, calls, client_cpu * per_call, server_cpu, failed)
