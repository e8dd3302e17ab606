"""The served paths' clients: latency, throughput, and each run's calls counted by status.

Latency is one Python client with the official stubs (what a user's client sees).
gRPC throughput uses `_bench_load` (client processes sending pre-serialized requests,
reporting client and server CPU per call); REST throughput uses one keep-alive
connection per client thread. `h2load_run` drives the same gRPC calls from a native
client (`_bench_h2load`): latency and throughput without a Python client's cost on the
server's cores. Every throughput run reports its calls by status and its real errors
(`_bench_status.counted`), the server's CPU per call and the mean batch it formed.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from _bench_h2load import run as h2load
from _bench_inprocess import time_calls
from _bench_load import PREDICT, process_cpu_seconds, run_load
from _bench_status import counted, metrics_page

CONCURRENCY = (1, 4, 16)


def grpc_request(key: str | list[str], model: str = "retrieval") -> Any:
    """A PredictRequest for serving_default with one query key (or a batch of them)."""
    from tensorflow_serving.apis import predict_pb2

    keys = [key] if isinstance(key, str) else key
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    tensor = request.inputs["query"]
    tensor.dtype = 7  # DT_STRING
    tensor.tensor_shape.dim.add().size = len(keys)
    tensor.string_val.extend(k.encode() for k in keys)
    return request


def grpc_noop_latency(target: str, n: int) -> dict:
    """One client's grpc.health.v1 Check latency: the floor of any gRPC call."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub, request = health_pb2_grpc.HealthStub(channel), health_pb2.HealthCheckRequest()
        return time_calls(lambda: stub.Check(request, timeout=10), n)


def grpc_latency(target: str, num_queries: int, n: int, model: str = "retrieval") -> dict:
    """One client's Predict latency with the official stub."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        requests = [grpc_request(str(i), model) for i in range(num_queries)]
        it = iter(range(10**9))
        return time_calls(lambda: stub.Predict(requests[next(it) % num_queries], timeout=10), n)


def rest_call(conn: http.client.HTTPConnection, key: int) -> None:
    """One row-format :predict on a keep-alive connection."""
    body = json.dumps({"instances": [str(key)]})
    conn.request("POST", "/v1/models/retrieval:predict", body, {"Content-Type": "application/json"})
    reply = conn.getresponse()
    data = reply.read()
    if reply.status != 200:
        raise RuntimeError(data)


def rest_latency(port: int, num_queries: int, n: int) -> dict:
    """One REST client's latency."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    it = iter(range(10**9))
    return time_calls(lambda: rest_call(conn, next(it) % num_queries), n)


def rest_throughput(port: int, num_queries: int, clients: int, seconds: float) -> dict:
    """Closed loop: `clients` threads, each with its own keep-alive connection; q/s, calls
    and `client_errors` (a client stops at its first error, which is counted)."""
    counts, errors = [0] * clients, []
    end = time.monotonic() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = c
        try:
            while time.monotonic() < end:
                rest_call(conn, i % num_queries)
                counts[c] += 1
                i += clients
        except Exception as exc:  # counted below instead of silently losing a client
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out: dict[str, Any] = {"qps": sum(counts) / seconds, "calls": sum(counts)}
    out["client_errors"] = len(errors)
    if errors:
        out["first_error"] = repr(errors[0])[:200]
    return out


def batch_stats(rest_url: str) -> tuple[float, float]:
    """(sum, count) of the server's scann_serving_batch_size histogram."""
    text = metrics_page(rest_url)
    total = re.search(r"^scann_serving_batch_size_sum\S* (\S+)$", text, re.M)
    count = re.search(r"^scann_serving_batch_size_count\S* (\S+)$", text, re.M)
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def on_server(server: Any, run: Callable[[], dict[str, Any]], rows: int = 1) -> dict[str, Any]:
    """`run()`'s result with the server's side of it: calls by status and real errors,
    server CPU per call (unless `run` measured it more tightly), the mean batch formed and,
    for requests of `rows` queries, rows per second."""
    before, cpu = batch_stats(server.rest_url), process_cpu_seconds(server.process.pid)
    out = counted(server.rest_url, run)
    cpu_after, after = process_cpu_seconds(server.process.pid), batch_stats(server.rest_url)
    if out.get("server_cpu_us_per_call") is None and None not in (cpu, cpu_after):
        out["server_cpu_us_per_call"] = (cpu_after - cpu) * 1e6 / max(out["calls"], 1)  # type: ignore[operator]
    batches = after[1] - before[1]
    out["mean_batch_size"] = (after[0] - before[0]) / batches if batches else None
    if rows > 1:
        out["queries_per_request"], out["rows_per_s"] = rows, out["qps"] * rows
    return out


def python_load(
    server: Any, method: str, payloads: list[bytes], clients: int, args: Any, rows: int = 1
) -> dict[str, Any]:
    """`_bench_load`'s client processes against `server`, counted (see `on_server`)."""

    def run() -> dict[str, Any]:
        load = run_load(
            server.target,
            method,
            payloads,
            clients,
            args.duration,
            args.client_processes,
            server.process.pid,
        )
        return load.to_dict()

    return on_server(server, run, rows)


def h2load_run(
    server: Any,
    method: str,
    payload: bytes,
    clients: int,
    args: Any,
    *,
    rows: int = 1,
    timed: bool = True,
) -> dict[str, Any]:
    """h2load against `server`: a timed run at `clients` connections, or (`timed` False)
    `--latency-samples` calls one after another; counted (see `on_server`)."""
    if timed:
        return on_server(
            server,
            lambda: h2load(server.grpc_port, method, payload, clients, seconds=args.duration),
            rows,
        )
    return on_server(
        server,
        lambda: h2load(server.grpc_port, method, payload, clients, requests=args.latency_samples),
        rows,
    )


def external_load(target: str, payloads: list[bytes], clients: int, args: Any) -> dict:
    """Python load processes against a server that is not ours (no metrics, no /proc)."""
    load = run_load(target, PREDICT, payloads, clients, args.duration, args.client_processes)
    return counted(None, load.to_dict)
