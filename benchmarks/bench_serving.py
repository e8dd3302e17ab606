"""Benchmark scann-serve against in-process ScaNN, the SavedModel and brute force.

One run builds a clustered catalogue (default 1M candidates x 32 dims), tunes a ScaNN
tree + AH index to recall@10 >= 0.95 against brute force, publishes it as a real
SavedModel version, serves it with `scann-serve` (without and with --enable_batching) and
measures, on the same machine and in the same run:

  * raw in-process ScaNN (pybind): single-query latency and batched throughput
  * the in-process SavedModel signature call (serving_default, one query)
  * brute force (numpy): single-query latency and batched throughput
  * served gRPC and REST: p50/p99 for one client; throughput at 1/4/16 concurrent clients

Writes <out>/bench_serving.json and <out>/bench_serving.png and prints a markdown table.
Targets: served single-client gRPC p50 <= 1.5x the in-process signature call; served
gRPC throughput with batching at 16 clients >= 25% of raw batched ScaNN throughput.

    uv run --no-sync python benchmarks/bench_serving.py                    # full (minutes)
    uv run --no-sync python benchmarks/bench_serving.py --num-candidates 100000 --duration 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

K = 10
CONCURRENCY = (1, 4, 16)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "n": len(ms),
    }


def time_calls(fn: Any, n: int, warmup: int = 50) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


# --- data and index ------------------------------------------------------------------
def catalogue(
    n: int, dim: int, num_queries: int, seed: int, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clustered candidates and queries: n/1000 Gaussian clusters of unit-variance centers,
    each point a center plus `spread` x unit noise (real embeddings are clustered; at spread
    1.0 the clusters overlap heavily, so reaching recall 0.95 takes a real search)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(16, n // 1000), dim)).astype(np.float32)

    def sample(count: int) -> np.ndarray:
        noise = rng.standard_normal((count, dim)).astype(np.float32)
        return (centers[rng.integers(len(centers), size=count)] + spread * noise).astype(np.float32)

    return sample(n), sample(num_queries)


def brute_force_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    out = []
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ items.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def tune(
    items: np.ndarray, queries: np.ndarray, truth: np.ndarray, target: float
) -> tuple[Any, Any, list]:
    """Smallest num_leaves_to_search reaching the target recall; returns (config, searcher, sweep)."""
    from scann_serving.export._index import build_pybind_searcher, default_config

    config = default_config(len(items), k=K, max_k=100)
    log(f"building pybind ScaNN index {config}")
    searcher = build_pybind_searcher(items, config, K)
    sweep = []
    for fraction in (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5):
        leaves = max(1, round(config.num_leaves * fraction))
        found, _ = searcher.search_batched_parallel(
            queries,
            leaves_to_search=leaves,
            pre_reorder_num_neighbors=config.num_reordering_candidates,
        )
        r = recall(np.asarray(found), truth)
        sweep.append({"num_leaves_to_search": leaves, "recall_at_10": r})
        log(f"  leaves_to_search={leaves:5d} recall@10={r:.4f}")
        if r >= target:
            tuned = config.with_search(leaves, config.num_reordering_candidates)
            return tuned, searcher, sweep
    raise SystemExit(f"no setting reached recall {target}; raise num_reordering_candidates")


def publish(base: Path, items: np.ndarray, queries: np.ndarray, config: Any) -> Path:
    from scann_serving.export.testing import TinyModelSpec, make_tiny_version

    spec = TinyModelSpec(1, 1, items.shape[1], 0)
    spec.users = np.asarray([str(i) for i in range(len(queries))], dtype=object)
    spec.user_embeddings = queries
    spec.identifiers = np.asarray([f"item_{i}" for i in range(len(items))], dtype=object)
    spec.item_embeddings = items
    log(f"exporting the SavedModel version (TF ScaNN index, {len(items)} candidates)")
    return make_tiny_version(
        base, model_name="retrieval", spec=spec, k=K, max_k=100, index_config=config
    )


# --- in-process measurements ----------------------------------------------------------
def in_process(
    truth: np.ndarray,
    searcher: Any,
    config: Any,
    items: np.ndarray,
    queries: np.ndarray,
    version_dir: Path,
    n: int,
) -> dict:
    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401

    leaves, reorder = config.num_leaves_to_search, config.num_reordering_candidates
    it = iter(range(10**9))

    def raw_single() -> None:
        searcher.search(queries[next(it) % len(queries)], K, reorder, leaves)

    batch = queries[:1024]

    def raw_batched() -> None:
        searcher.search_batched_parallel(batch, K, reorder, leaves)

    model = tf.saved_model.load(str(version_dir))
    fn = model.signatures["serving_default"]
    keys = [np.asarray([str(i).encode()], dtype=object) for i in range(len(queries))]

    def signature_call() -> None:
        out = fn(query=tf.constant(keys[next(it) % len(keys)]))
        out["identifiers"].numpy(), out["scores"].numpy()

    def brute_single() -> None:
        scores = items @ queries[next(it) % len(queries)]
        np.argpartition(-scores, K)[:K]

    def brute_batched() -> None:
        brute_force_top_k(items, queries[:256], K)

    found = model.signatures["search_embedding"](embedding=tf.constant(queries[: len(truth)]))
    ids = np.char.decode(found["identifiers"].numpy().astype(bytes)).astype(str)
    exported = recall(np.asarray([[int(x[5:]) for x in row] for row in ids]), truth)
    log(f"exported SavedModel recall@10 vs brute force: {exported:.4f}")
    results = {
        "exported_recall_at_10": exported,
        "raw_scann_single": time_calls(raw_single, n),
        "signature_call": time_calls(signature_call, n),
        "brute_force_single": time_calls(brute_single, max(20, n // 20), warmup=5),
    }
    results["raw_scann_batched_qps"] = (
        len(batch) / time_calls(raw_batched, 20, warmup=3)["p50_ms"] * 1e3
    )
    results["brute_force_batched_qps"] = (
        256 / time_calls(brute_batched, 5, warmup=1)["p50_ms"] * 1e3
    )
    return results


# --- served measurements ---------------------------------------------------------------
def _grpc_request(key: str) -> Any:
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "retrieval"
    tensor = request.inputs["query"]
    tensor.dtype = 7  # DT_STRING
    tensor.tensor_shape.dim.add().size = 1
    tensor.string_val.append(key.encode())
    return request


def grpc_noop_latency(target: str, n: int) -> dict:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub, request = health_pb2_grpc.HealthStub(channel), health_pb2.HealthCheckRequest()
        return time_calls(lambda: stub.Check(request, timeout=10), n)


def grpc_latency(target: str, num_queries: int, n: int) -> dict:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        requests = [_grpc_request(str(i)) for i in range(num_queries)]
        it = iter(range(10**9))
        return time_calls(lambda: stub.Predict(requests[next(it) % num_queries], timeout=10), n)


def grpc_throughput(
    target: str, num_queries: int, clients: int, seconds: float, noop: bool = False
) -> float:
    """Closed loop: `clients` calls always outstanding (each completion issues the next).

    Uses the sync stub's futures: far less client CPU per call than threads or grpc.aio,
    which matters because the clients share the 2 cores with the server.
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        method, requests = stub.Predict, [_grpc_request(str(i)) for i in range(num_queries)]
        if noop:  # the floor: a no-op RPC (grpc.health.v1 Check) through the same server
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            method = health_pb2_grpc.HealthStub(channel).Check
            requests = [health_pb2.HealthCheckRequest()] * num_queries

        def run(duration: float) -> int:
            lock, finished = threading.Lock(), threading.Event()
            state = {"done": 0, "active": clients, "next": 0, "errors": 0}
            end = time.monotonic() + duration

            def issue() -> None:
                with lock:
                    i = state["next"] = state["next"] + 1
                method.future(requests[i % num_queries], timeout=10).add_done_callback(done)

            def done(future: Any) -> None:
                with lock:
                    state["done"] += 1
                    state["errors"] += future.exception() is not None
                if time.monotonic() < end:
                    issue()
                    return
                with lock:
                    state["active"] -= 1
                    if not state["active"]:
                        finished.set()

            for _ in range(clients):
                issue()
            finished.wait()
            if state["errors"]:
                raise RuntimeError(f"{state['errors']} failed calls at {clients} clients")
            return state["done"]

        run(min(1.0, seconds))  # warm the connection and the server
        return run(seconds) / seconds


def rest_call(conn: http.client.HTTPConnection, key: int) -> None:
    body = json.dumps({"instances": [str(key)]})
    conn.request("POST", "/v1/models/retrieval:predict", body, {"Content-Type": "application/json"})
    reply = conn.getresponse()
    data = reply.read()
    if reply.status != 200:
        raise RuntimeError(data)


def rest_latency(port: int, num_queries: int, n: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    it = iter(range(10**9))
    return time_calls(lambda: rest_call(conn, next(it) % num_queries), n)


def rest_throughput(port: int, num_queries: int, clients: int, seconds: float) -> float:
    counts = [0] * clients
    end = time.monotonic() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        i = c
        while time.monotonic() < end:
            rest_call(conn, i % num_queries)
            counts[c] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def served(
    base: Path, num_queries: int, n: int, seconds: float, batching: bool, workdir: Path
) -> dict:
    from serve_helpers import ServerProcess

    flags = ["--file_system_poll_wait_seconds=0"]
    if batching:
        params = workdir / "batching.txt"
        params.write_text(
            "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 0 }\n"
            "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 100 }\n"
        )
        flags += [
            "--enable_batching",
            f"--batching_parameters_file={params}",
            "--grpc_max_threads=32",
        ]
    log(f"starting scann-serve ({'with' if batching else 'without'} batching)")
    with ServerProcess(*flags, model_name="retrieval", model_base_path=base) as server:
        out: dict[str, Any] = {
            "grpc_noop_single": grpc_noop_latency(server.target, n),
            "grpc_noop_qps_16": grpc_throughput(server.target, num_queries, 16, seconds, noop=True),
            "grpc_single": grpc_latency(server.target, num_queries, n),
            "rest_single": rest_latency(server.rest_port or 0, num_queries, n),
        }
        for clients in CONCURRENCY:
            out[f"grpc_qps_{clients}"] = grpc_throughput(
                server.target, num_queries, clients, seconds
            )
            out[f"rest_qps_{clients}"] = rest_throughput(
                server.rest_port or 0, num_queries, clients, seconds
            )
            log(
                f"  {clients:2d} clients: gRPC {out[f'grpc_qps_{clients}']:.0f} q/s, REST {out[f'rest_qps_{clients}']:.0f} q/s"
            )
    return out


# --- report ------------------------------------------------------------------------------
def table(results: dict) -> str:
    ip, plain, batched = (
        results["in_process"],
        results["served"]["plain"],
        results["served"]["batching"],
    )
    rows = [
        ("raw ScaNN (pybind), 1 query", ip["raw_scann_single"], None),
        ("SavedModel signature call, 1 query", ip["signature_call"], None),
        ("brute force (numpy), 1 query", ip["brute_force_single"], None),
        ("served gRPC, 1 client", plain["grpc_single"], plain),
        ("served gRPC + batching, 1 client", batched["grpc_single"], batched),
        ("served REST, 1 client", plain["rest_single"], None),
    ]
    lines = [
        "| path | p50 ms | p99 ms | q/s @1 | q/s @4 | q/s @16 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, lat, qps in rows:
        tput = [f"{qps[f'grpc_qps_{c}']:.0f}" for c in CONCURRENCY] if qps else ["", "", ""]
        lines.append(
            f"| {name} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | " + " | ".join(tput) + " |"
        )
    lines.append(
        "| served REST (no batching / batching) | | | "
        + " | ".join(
            f"{plain[f'rest_qps_{c}']:.0f} / {batched[f'rest_qps_{c}']:.0f}" for c in CONCURRENCY
        )
        + " |"
    )
    noop = plain["grpc_noop_single"]
    lines.append(
        f"| gRPC no-op floor (health Check, same server) | {noop['p50_ms']:.3f} | "
        f"{noop['p99_ms']:.3f} | | | {plain['grpc_noop_qps_16']:.0f} |"
    )
    lines.append(
        f"| raw ScaNN batched (1024 queries/call) | | | {ip['raw_scann_batched_qps']:.0f} | | |"
    )
    lines.append(
        f"| brute force batched (256 queries/call) | | | {ip['brute_force_batched_qps']:.0f} | | |"
    )
    t = results["targets"]
    floor_ratio = noop["p50_ms"] / ip["signature_call"]["p50_ms"]
    floor_fraction = plain["grpc_noop_qps_16"] / ip["raw_scann_batched_qps"]
    index = results["index"]
    lines.append("")
    lines.append(
        f"{results['num_candidates']:,} x {results['dim']} candidates, {index['num_leaves']} leaves, "
        f"{index['num_leaves_to_search']} searched, {index['num_reordering_candidates']} reordered: "
        f"exported recall@10 = {results['recall_at_10']:.3f} vs brute force; {results['cpus']} CPUs."
    )
    lines.append(
        f"Targets: served gRPC p50 / signature call = {t['latency_ratio']:.2f} (<= 1.5: "
        f"{'met' if t['latency_met'] else 'NOT met'}); batched served q/s @16 / raw batched ScaNN = "
        f"{t['throughput_fraction']:.1%} (>= 25%: {'met' if t['throughput_met'] else 'NOT met'})."
    )
    lines.append(
        f"Floor on this machine: a no-op gRPC call alone is {floor_ratio:.2f}x the signature call "
        f"and its 16-client rate is {floor_fraction:.1%} of raw batched ScaNN."
    )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    ip, plain, batched = (
        results["in_process"],
        results["served"]["plain"],
        results["served"]["batching"],
    )
    names = ["raw ScaNN", "signature call", "gRPC", "gRPC+batching", "REST"]
    lats = [
        ip["raw_scann_single"],
        ip["signature_call"],
        plain["grpc_single"],
        batched["grpc_single"],
        plain["rest_single"],
    ]
    x = np.arange(len(names))
    left.bar(x - 0.2, [v["p50_ms"] for v in lats], 0.4, label="p50")
    left.bar(x + 0.2, [v["p99_ms"] for v in lats], 0.4, label="p99")
    left.set_xticks(x, names, rotation=20)
    left.set_ylabel("ms per query (1 client)")
    left.legend()
    for label, data, key in [
        ("gRPC", plain, "grpc"),
        ("gRPC + batching", batched, "grpc"),
        ("REST", plain, "rest"),
        ("REST + batching", batched, "rest"),
    ]:
        right.plot(
            CONCURRENCY, [data[f"{key}_qps_{c}"] for c in CONCURRENCY], marker="o", label=label
        )
    right.axhline(
        ip["raw_scann_batched_qps"], color="gray", linestyle="--", label="raw ScaNN batched"
    )
    right.axhline(
        0.25 * ip["raw_scann_batched_qps"], color="red", linestyle=":", label="25% target"
    )
    if "grpc_noop_qps_16" in plain:
        right.plot(
            [16], [plain["grpc_noop_qps_16"]], "k*", markersize=12, label="gRPC no-op floor @16"
        )
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("concurrent clients")
    right.set_ylabel("queries / s")
    right.legend(fontsize=8)
    fig.suptitle(
        f"scann-serve, {results['num_candidates']:,} x {results['dim']} candidates, recall@10 {results['recall_at_10']:.3f}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-candidates", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--num-queries", type=int, default=2000)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--latency-samples", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput point")
    parser.add_argument("--out", type=Path, default=Path("out/bench_serving"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, help="only redraw table and PNG from this JSON")
    parser.add_argument("--spread", type=float, default=1.0, help="within-cluster noise scale")
    parser.add_argument(
        "--model-dir", type=Path, help="keep the exported model here and reuse it on the next run"
    )
    parser.add_argument(
        "--only", choices=["all", "plain", "batching"], default="all", help="served modes to run"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        results = json.loads(args.report.read_text())
        plot(results, args.out / "bench_serving.png")
        (args.out / "bench_serving.md").write_text(table(results) + "\n")
        print(table(results))
        return
    log(f"catalogue: {args.num_candidates:,} x {args.dim}, {args.num_queries} queries")
    items, queries = catalogue(
        args.num_candidates, args.dim, args.num_queries, args.seed, args.spread
    )
    truth = brute_force_top_k(items, queries[:1000], K)
    config, searcher, sweep = tune(items, queries[:1000], truth, args.target_recall)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        base = args.model_dir or Path(tmp) / "retrieval"
        existing = sorted(p for p in base.glob("[0-9]*") if p.is_dir()) if base.exists() else []
        version_dir = existing[-1] if existing else publish(base, items, queries, config)
        log("measuring in-process paths")
        ip = in_process(truth, searcher, config, items, queries, version_dir, args.latency_samples)
        served_results = {
            mode: served(
                base,
                len(queries),
                args.latency_samples,
                args.duration,
                mode == "batching",
                Path(tmp),
            )
            for mode in ("plain", "batching")
            if args.only in ("all", mode)
        }
    if args.only != "all":
        print(json.dumps({"in_process": ip, "served": served_results}, indent=1))
        return
    ratio = served_results["plain"]["grpc_single"]["p50_ms"] / ip["signature_call"]["p50_ms"]
    fraction = served_results["batching"]["grpc_qps_16"] / ip["raw_scann_batched_qps"]
    results = {
        "num_candidates": args.num_candidates,
        "dim": args.dim,
        "spread": args.spread,
        "command": " ".join(sys.argv),
        "index": config.to_dict(),
        "recall_at_10": ip["exported_recall_at_10"],
        "tuning_recall_at_10": sweep[-1]["recall_at_10"],
        "tuning_sweep": sweep,
        "cpus": os.cpu_count(),
        "in_process": ip,
        "served": served_results,
        "targets": {
            "latency_ratio": ratio,
            "latency_met": ratio <= 1.5,
            "throughput_fraction": fraction,
            "throughput_met": fraction >= 0.25,
        },
    }
    (args.out / "bench_serving.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "bench_serving.png")
    report = table(results)
    (args.out / "bench_serving.md").write_text(report + "\n")
    print(report)
    log(f"wrote {args.out}/bench_serving.json, .png, .md")


if __name__ == "__main__":
    main()
