"""Served measurements: scann-serve over gRPC and REST, and the no-op gRPC floor.

Latency is one Python client with the official stubs (what a user's client sees).
gRPC throughput uses `_bench_load` (client processes sending pre-serialized requests,
reporting client and server CPU per call); REST throughput uses one keep-alive
connection per client thread. When h2load is installed, the same gRPC calls are also
driven by a native client (`_bench_h2load`): latency and throughput without a Python
client's cost on the server's cores (keys prefixed `c_`).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from _bench_data import log
from _bench_h2load import h2load_path
from _bench_h2load import run as h2load
from _bench_inprocess import time_calls
from _bench_load import HEALTH_CHECK, PREDICT, process_cpu_seconds, run_load

CONCURRENCY = (1, 4, 16)


def grpc_request(key: str, model: str = "retrieval") -> Any:
    """A PredictRequest for serving_default with one query key."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    tensor = request.inputs["query"]
    tensor.dtype = 7  # DT_STRING
    tensor.tensor_shape.dim.add().size = 1
    tensor.string_val.append(key.encode())
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


def rest_throughput(port: int, num_queries: int, clients: int, seconds: float) -> float:
    """Closed loop: `clients` threads, each with its own keep-alive connection."""
    counts, errors = [0] * clients, []
    end = time.monotonic() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        i = c
        try:
            while time.monotonic() < end:
                rest_call(conn, i % num_queries)
                counts[c] += 1
                i += clients
        except Exception as exc:  # reported below instead of silently losing a client
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {clients} REST clients failed: {errors[0]!r}")
    return sum(counts) / seconds


def _metrics_page(rest_url: str) -> str:
    return urllib.request.urlopen(rest_url + "/monitoring/prometheus/metrics").read().decode()


def batch_stats(rest_url: str) -> tuple[float, float]:
    """(sum, count) of the server's scann_serving_batch_size histogram."""
    text = _metrics_page(rest_url)
    total = re.search(r"^scann_serving_batch_size_sum\S* (\S+)$", text, re.M)
    count = re.search(r"^scann_serving_batch_size_count\S* (\S+)$", text, re.M)
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def request_counts(rest_url: str) -> dict[str, float]:
    """Calls the server has answered, by status ("OK", "NOT_FOUND", ...), from its counter."""
    counts: dict[str, float] = {}
    pattern = r'^scann_serving_requests_total\{[^}]*status="(\w+)"[^}]*\} (\S+)$'
    for status, value in re.findall(pattern, _metrics_page(rest_url), re.M):
        counts[status] = counts.get(status, 0.0) + float(value)
    return counts


def failed_calls(rest_url: str) -> float:
    """Calls the server answered with a status other than OK."""
    return sum(n for status, n in request_counts(rest_url).items() if status != "OK")


def native_client(server: Any, payload: bytes, args: Any) -> dict[str, Any]:
    """h2load rows: no-op and Predict latency (1 client), throughput at CONCURRENCY."""
    port, n, seconds = server.grpc_port, args.latency_samples, args.duration
    failed = failed_calls(server.rest_url)
    out: dict[str, Any] = {
        "c_noop_single": h2load(port, HEALTH_CHECK, b"", 1, requests=n),
        "c_single": h2load(port, PREDICT, payload, 1, requests=n),
    }
    runs = [("c_noop_16", HEALTH_CHECK, b"", 16)]
    runs += [(f"c_{clients}", PREDICT, payload, clients) for clients in CONCURRENCY]
    for name, method, message, clients in runs:
        before, cpu = batch_stats(server.rest_url), process_cpu_seconds(server.process.pid)
        load = h2load(port, method, message, clients, seconds=seconds)
        cpu_after, after = process_cpu_seconds(server.process.pid), batch_stats(server.rest_url)
        if cpu is not None and cpu_after is not None:
            load["server_cpu_us_per_call"] = (cpu_after - cpu) * 1e6 / load["calls"]
        batches = after[1] - before[1]
        load["mean_batch_size"] = (after[0] - before[0]) / batches if batches else None
        out[name] = load
        log(
            f"  h2load {name}: {load['qps']:.0f} q/s, p50 {load['p50_ms']:.3f} ms, server "
            f"{load.get('server_cpu_us_per_call', 0):.0f} us CPU/call"
        )
    if failed_calls(server.rest_url) != failed:  # h2load counts any HTTP 200 as success
        raise RuntimeError("the server answered some h2load calls with a gRPC error")
    return out


def batching_flags(workdir: Path, timeout_micros: int = 0, threads: int = 1) -> list[str]:
    """Flags for --enable_batching with a BatchingParameters file written in `workdir`."""
    params = workdir / "batching.txt"
    params.write_text(
        f"max_batch_size {{ value: 64 }}\nbatch_timeout_micros {{ value: {timeout_micros} }}\n"
        f"num_batch_threads {{ value: {threads} }}\nmax_enqueued_batches {{ value: 100 }}\n"
    )
    return ["--enable_batching", f"--batching_parameters_file={params}", "--grpc_max_threads=32"]


def _throughput(server: Any, payloads: list[bytes], clients: int, args: Any) -> dict:
    before = batch_stats(server.rest_url)
    load = run_load(
        server.target,
        PREDICT,
        payloads,
        clients,
        args.duration,
        args.client_processes,
        server.process.pid,
    )
    after = batch_stats(server.rest_url)
    batches = after[1] - before[1]
    out = load.to_dict()
    out["mean_batch_size"] = (after[0] - before[0]) / batches if batches else None
    return out


#: Served configurations: name -> (--enable_batching, --grpc_server_mode).
MODES = {
    "plain": (False, "threads"),
    "batching": (True, "threads"),
    "batching_asyncio": (True, "asyncio"),
}


def served(base: Path, num_queries: int, args: Any, mode: str, workdir: Path) -> dict:
    """Every served measurement against one scann-serve subprocess in configuration `mode`."""
    from serve_helpers import ServerProcess

    batching, server_mode = MODES[mode]
    flags = ["--file_system_poll_wait_seconds=0", f"--grpc_server_mode={server_mode}"]
    flags += args.server_flag
    if batching:
        flags += batching_flags(workdir, args.batch_timeout_micros, args.num_batch_threads)
    log(f"starting scann-serve ({mode}) {flags}")
    payloads = [grpc_request(str(i)).SerializeToString() for i in range(num_queries)]
    n = args.latency_samples
    with ServerProcess(*flags, model_name="retrieval", model_base_path=base) as server:
        noop = run_load(
            server.target,
            HEALTH_CHECK,
            [b""],
            16,
            args.duration,
            args.client_processes,
            server.process.pid,
        )
        out: dict[str, Any] = {
            "grpc_noop_single": grpc_noop_latency(server.target, n),
            "grpc_noop_16": noop.to_dict(),
            "grpc_noop_qps_16": noop.qps,
            "grpc_single": grpc_latency(server.target, num_queries, n),
            "rest_single": rest_latency(server.rest_port or 0, num_queries, n),
        }
        for clients in CONCURRENCY:
            load = _throughput(server, payloads, clients, args)
            out[f"grpc_{clients}"] = load
            out[f"grpc_qps_{clients}"] = load["qps"]
            out[f"rest_qps_{clients}"] = rest_throughput(
                server.rest_port or 0, num_queries, clients, args.duration
            )
            log(
                f"  {clients:2d} clients: gRPC {load['qps']:.0f} q/s (server "
                f"{load['server_cpu_us_per_call'] or 0:.0f} us CPU/call, client "
                f"{load['client_cpu_us_per_call']:.0f} us, mean batch "
                f"{load['mean_batch_size'] or 0:.1f}), REST {out[f'rest_qps_{clients}']:.0f} q/s"
            )
        if h2load_path():
            out.update(native_client(server, payloads[1], args))
        else:
            log("h2load not found (apt-get install nghttp2-client): skipping native-client rows")
    return out


def external(target: str, model: str, num_queries: int, args: Any) -> dict:
    """Another server speaking TF Serving's API (e.g. the TF Serving + ScaNN image) serving
    the same exported version as `model`: the same latency and throughput measurements,
    without server CPU or batch sizes (its process and metrics are not ours to read)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    log(f"measuring the external server {target} (model {model!r})")
    with grpc.insecure_channel(target) as channel:  # one checked call: right model, k rows
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            grpc_request("1", model), timeout=30
        )
    if not reply.outputs["identifiers"].string_val:
        raise RuntimeError(f"{target} answered Predict without identifiers: {reply}")
    payloads = [grpc_request(str(i), model).SerializeToString() for i in range(num_queries)]
    out: dict[str, Any] = {
        "target": target,
        "grpc_single": grpc_latency(target, num_queries, args.latency_samples, model),
    }
    for clients in CONCURRENCY:
        load = run_load(target, PREDICT, payloads, clients, args.duration, args.client_processes)
        out[f"grpc_{clients}"] = load.to_dict()
        out[f"grpc_qps_{clients}"] = load.qps
    if h2load_path():
        out["c_single"] = h2load(target, PREDICT, payloads[1], 1, requests=args.latency_samples)
        for clients in CONCURRENCY:
            out[f"c_{clients}"] = h2load(
                target, PREDICT, payloads[1], clients, seconds=args.duration
            )
    return out
