"""How much latency the client adds on top of the bare gRPC call, against a running server.

    python client/scripts/bench_client.py --target 127.0.0.1:8500 --model retrieval \
        [--metrics-url http://127.0.0.1:8501/monitoring/prometheus/metrics] [-n 2000] [-k 10]

Measures, one call at a time with the same query and k:
  * wire:   the pre-serialized PredictRequest bytes sent on a bare channel, the response
            bytes not even parsed (the floor: network + server);
  * client: `RetrievalClient.retrieve` (validation, request building, response decoding
            into numpy arrays, error mapping);
  * server: mean request latency from scann-serve's Prometheus histogram over the run
            (when --metrics-url is given).
Prints one JSON object (milliseconds).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
import urllib.request
from collections.abc import Callable

import grpc
from scann_serving.client import RetrievalClient
from scann_serving.client._channel import PREDICT


def percentiles(fn: Callable[[], object], n: int, warmup: int = 100) -> dict[str, float]:
    """p50/p90/p99/mean of `fn`'s wall time in ms over `n` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return {
        "p50": pick(0.5),
        "p90": pick(0.9),
        "p99": pick(0.99),
        "mean": statistics.fmean(samples),
    }


def server_seconds(url: str) -> tuple[float, float]:
    """(sum, count) of scann-serve's request latency histogram for gRPC calls."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = count = 0.0
    for line in text.splitlines():
        match = re.match(r"(\S*request_latency_seconds_(sum|count))\{([^}]*)\} (\S+)", line)
        if match and "grpc" in match.group(3):
            if match.group(2) == "sum":
                total += float(match.group(4))
            else:
                count += float(match.group(4))
    return total, count


def main() -> None:
    """Run the three measurements and print them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--metrics-url", default="")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--query", default="1")
    args = parser.parse_args()
    with RetrievalClient(args.target, model=args.model) as client:
        meta = client.metadata()
        plan = client._plan_retrieve(meta, (None, None), [args.query], args.k, None)
        payload = plan.request.SerializeToString()
        with grpc.insecure_channel(args.target) as channel:
            bare = channel.unary_unary(PREDICT)  # bytes in, bytes out
            wire = percentiles(lambda: bare(payload, timeout=10), args.n)
        before = server_seconds(args.metrics_url) if args.metrics_url else None
        ours = percentiles(lambda: client.retrieve(args.query, args.k), args.n, warmup=0)
        after = server_seconds(args.metrics_url) if args.metrics_url else None
    result = {"n": args.n, "k": args.k, "wire_ms": wire, "client_ms": ours}
    if before and after and after[1] > before[1]:
        result["server_mean_ms"] = (after[0] - before[0]) / (after[1] - before[1]) * 1e3
    result["client_overhead_p50_ms"] = ours["p50"] - wire["p50"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
