"""The serving benchmark's own tools, on the shared tiny server (the benchmark itself is slow).

* the native load generator (`benchmarks/_bench_h2load.py`): h2load speaking gRPC framing
  really drives Predict on a real scann-serve, and a call the server answers with a gRPC
  error (HTTP 200 + grpc-status trailer, which h2load counts as success) is caught by the
  server's request counter, as `_bench_served.native_client` relies on;
* the report (`benchmarks/_bench_report.py`) recomputes the committed results' targets
  from their raw numbers;
* the data (`benchmarks/_bench_data.py`) tunes its index with the exporter's own sweep,
  brute-force truth and recall (`scann_serving.export.evaluation`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from scann_serving.export.evaluation import exact_top_k, recall_at_k, scann_top_k

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _bench_data  # noqa: E402
import _bench_h2load  # noqa: E402
import _bench_report  # noqa: E402
import _bench_served  # noqa: E402

needs_h2load = pytest.mark.skipif(
    _bench_h2load.h2load_path() is None,
    reason="h2load is not installed (Debian/Ubuntu: apt-get install nghttp2-client)",
)


def test_grpc_frame_is_flag_length_message() -> None:
    assert _bench_h2load.grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert _bench_h2load.grpc_frame(b"") == b"\x00\x00\x00\x00\x00"


def _requests_ok(rest_url: str) -> float:
    return _bench_served.request_counts(rest_url).get("OK", 0.0)


@needs_h2load
def test_h2load_drives_predict_and_errors_are_counted(tiny_server: Any, tiny_spec: Any) -> None:
    request = _bench_served.grpc_request(str(tiny_spec.users[0])).SerializeToString()
    ok_before = _requests_ok(tiny_server.rest_url)
    failed_before = _bench_served.failed_calls(tiny_server.rest_url)

    result = _bench_h2load.run(
        tiny_server.grpc_port, _bench_served.PREDICT, request, 1, requests=50
    )

    assert result["calls"] == 50
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["qps"] > 0
    assert _requests_ok(tiny_server.rest_url) - ok_before == 50  # computed, not just answered
    assert _bench_served.failed_calls(tiny_server.rest_url) == failed_before

    unknown = _bench_served.grpc_request("x", model="no_such_model").SerializeToString()
    _bench_h2load.run(tiny_server.grpc_port, _bench_served.PREDICT, unknown, 1, requests=5)
    assert _bench_served.failed_calls(tiny_server.rest_url) == failed_before + 5


def test_report_recomputes_the_committed_targets(tmp_path: Path) -> None:
    results = json.loads((BENCHMARKS / "results" / "bench_serving.json").read_text())
    t = _bench_report.targets(results)
    ip, served = results["in_process"], results["served"]

    signature = ip["signature_call"]["p50_ms"]
    assert t["latency_ratio"] == pytest.approx(served["plain"]["grpc_single"]["p50_ms"] / signature)
    parallel = ip["raw_scann_batched_qps_by_size"]["1024"]
    assert t["throughput_fraction"] == pytest.approx(served["batching"]["grpc_qps_16"] / parallel)
    assert t["latency_met"] == (
        min(t["latency_ratio"], t.get("latency_ratio_native", 1e9)) <= _bench_report.LATENCY_TARGET
    )
    results["targets"] = t
    text = _bench_report.table(results)
    assert "Target 1, served gRPC p50" in text and "Target 2, batched served" in text
    _bench_report.plot(results, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tuning_is_the_exporters_sweep_and_reaches_the_target() -> None:
    k = _bench_data.K
    items, queries = _bench_data.catalogue(6_000, 8, 200, seed=0, spread=1.0)
    truth = exact_top_k(queries, items, k)

    config, searcher, tuning = _bench_data.tune(items, queries, truth, 0.9)

    assert tuning is not None and tuning.reached and config == tuning.config
    assert not config.brute_force and len(tuning.points) > 1
    found = scann_top_k(searcher, queries, k, config.search_kwargs(k))
    assert recall_at_k(found, truth, k) == pytest.approx(tuning.chosen.recall)
    assert tuning.chosen.recall >= 0.9


def test_a_brute_force_catalogue_is_not_tuned_and_exact() -> None:
    k = _bench_data.K
    items, queries = _bench_data.catalogue(1_000, 8, 50, seed=1, spread=1.0)
    truth = exact_top_k(queries, items, k)

    config, searcher, tuning = _bench_data.tune(items, queries, truth, 0.95)

    assert config.brute_force and tuning is None
    found = scann_top_k(searcher, queries, k, config.search_kwargs(k))
    assert recall_at_k(found, truth, k) == 1.0
