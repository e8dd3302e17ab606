"""The serving benchmark's own tools, on the shared tiny server, and one tiny run of it all.

* the native load generator (`benchmarks/_bench_h2load.py`): h2load speaking gRPC framing
  really drives Predict on a real scann-serve, and a call the server answers with a gRPC
  error (HTTP 200 + grpc-status trailer, which h2load counts as success) is caught by the
  server's request counter, as `_bench_status.counted` relies on;
* a run's calls by status (`benchmarks/_bench_status.py`): end-of-run cancellations are
  told apart from real errors, and a failing measurement becomes a failed row;
* the report (`benchmarks/_bench_report.py`) recomputes the committed results' targets
  from their raw numbers;
* the data (`benchmarks/_bench_data.py`) tunes its index with the exporter's own sweep,
  brute-force truth and recall (`scann_serving.export.evaluation`);
* the whole benchmark (`benchmarks/bench_serving.py`) at a tiny size: every mode, every row
  with numbers and no real errors, a configuration that cannot start isolated as failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scann_serving.export.evaluation import exact_top_k, recall_at_k, scann_top_k

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _bench_clients  # noqa: E402
import _bench_data  # noqa: E402
import _bench_h2load  # noqa: E402
import _bench_report  # noqa: E402
import _bench_served  # noqa: E402
import _bench_status  # noqa: E402
import _bench_targets  # noqa: E402

PREDICT = "/tensorflow.serving.PredictionService/Predict"
needs_h2load = pytest.mark.skipif(
    _bench_h2load.h2load_path() is None,
    reason="h2load is not installed (Debian/Ubuntu: apt-get install nghttp2-client)",
)


def test_grpc_frame_is_flag_length_message() -> None:
    assert _bench_h2load.grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert _bench_h2load.grpc_frame(b"") == b"\x00\x00\x00\x00\x00"


def _requests_ok(rest_url: str) -> float:
    return _bench_status.request_counts(rest_url).get("OK", 0.0)


@needs_h2load
def test_h2load_drives_predict_and_errors_are_counted(tiny_server: Any, tiny_spec: Any) -> None:
    request = _bench_clients.grpc_request(str(tiny_spec.users[0])).SerializeToString()
    ok_before = _requests_ok(tiny_server.rest_url)
    failed_before = _bench_status.failed_calls(tiny_server.rest_url)

    result = _bench_h2load.run(tiny_server.grpc_port, PREDICT, request, 1, requests=50)

    assert result["calls"] == 50
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["qps"] > 0
    assert _requests_ok(tiny_server.rest_url) - ok_before == 50  # computed, not just answered
    assert _bench_status.failed_calls(tiny_server.rest_url) == failed_before
    assert result["http_errors"] == 0 and result["cancellable_at_end"] == 0

    unknown = _bench_clients.grpc_request("x", model="no_such_model").SerializeToString()
    counted = _bench_status.counted(
        tiny_server.rest_url,
        lambda: _bench_h2load.run(tiny_server.grpc_port, PREDICT, unknown, 1, requests=5),
    )
    assert _bench_status.failed_calls(tiny_server.rest_url) == failed_before + 5
    assert counted["statuses"] == {"NOT_FOUND": 5} and counted["real_errors"] == 5


def test_end_of_run_cancellations_are_not_errors_and_the_rest_are() -> None:
    timed_run = _bench_status.classify({"OK": 3206, "CANCELLED": 16}, cancellable_at_end=16)
    assert timed_run["end_of_run_cancelled"] == 16 and timed_run["real_errors"] == 0

    more = _bench_status.classify({"OK": 10, "CANCELLED": 20, "INTERNAL": 2}, 16, 1)
    assert more["end_of_run_cancelled"] == 16
    assert more["real_errors"] == 4 + 2 + 1  # cancelled beyond the end, other codes, client's

    fixed_count = _bench_status.classify({"OK": 50, "CANCELLED": 1})  # an -n run cancels none
    assert fixed_count["real_errors"] == 1


def test_h2load_summary_line_is_parsed() -> None:
    stdout = (
        "finished in 1.00s, 3206.00 req/s, 1MB/s\n"
        "requests: 3222 total, 3222 started, 3206 done, 3206 succeeded, 16 failed, "
        "0 errored, 0 timeout\n"
    )
    counts = _bench_h2load.request_counts(stdout)
    assert counts["started"] - counts["done"] == 16 and counts["errored"] == 0
    assert _bench_h2load.request_counts("no summary") == {}


def test_a_failing_measurement_is_a_failed_row_and_is_saved() -> None:
    out: dict[str, Any] = {}
    saved: list[dict[str, Any]] = []

    def broken() -> dict[str, Any]:
        raise RuntimeError("scann-serve exited with 2:\nusage: ...\nerror: no --backend")

    assert _bench_status.measure(out, "c_16", broken, lambda: saved.append(dict(out))) is None
    assert _bench_status.measure(out, "c_4", lambda: {"qps": 1.0}, lambda: None) == {"qps": 1.0}

    assert out["c_16"] == {
        "failed": "RuntimeError: scann-serve exited with 2: ... error: no --backend"
    }
    assert saved == [{"c_16": out["c_16"]}]
    assert out["c_4"] == {"qps": 1.0}


def test_rounds_are_interleaved_and_keep_the_median_and_every_error() -> None:
    order: list[str] = []
    results = {
        "noop": iter([{"p50_ms": 3.0}, {"p50_ms": 1.0}, {"p50_ms": 2.0}]),
        "predict": iter(
            [
                {"p50_ms": 5.0, "real_errors": 1, "statuses": {"OK": 9, "INTERNAL": 1}},
                RuntimeError("server gone"),
                {"p50_ms": 4.0, "real_errors": 0, "statuses": {"OK": 10}},
            ]
        ),
    }

    def row(key: str) -> Any:
        def run() -> dict[str, Any]:
            order.append(key)
            result = next(results[key])
            if isinstance(result, Exception):
                raise result
            return result

        return run

    out: dict[str, Any] = {}
    rows = [("noop", row("noop")), ("predict", row("predict"))]
    _bench_status.measure_rounds(out, rows, 3, lambda: None)

    assert order == ["noop", "predict"] * 3
    assert out["noop"]["p50_ms"] == 2.0 and [r["p50_ms"] for r in out["noop"]["rounds"]] == [
        3.0,
        1.0,
        2.0,
    ]
    assert out["predict"]["p50_ms"] == 4.5 and out["predict"]["failed_rounds"] == 1
    assert out["predict"]["real_errors"] == 1
    assert out["predict"]["statuses"] == {"OK": 19, "INTERNAL": 1}


def test_backend_flags_only_name_tensorflow_to_a_server_that_has_the_flag() -> None:
    assert _bench_served.backend_flags("tensorflow", has_backend_flag=False) == []
    assert _bench_served.backend_flags("tensorflow", True) == ["--backend=tensorflow"]
    assert _bench_served.backend_flags("native", False) == ["--backend=native"]
    assert _bench_served.default_backends(False) == ["tensorflow"]
    assert _bench_served.default_backends(True) == ["tensorflow", "native"]


def _allowed_cpus(pid: int) -> dict[int, str]:
    """Each thread of `pid` -> its Cpus_allowed_list, as the kernel reports it."""
    allowed = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                allowed[int(task.name)] = line.split(":", 1)[1].strip()
    return allowed


def test_cpu_split_gives_the_clients_the_last_cpu_and_obeys_the_flag() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    assert _bench_served.cpu_split(False) is None
    if len(cpus) >= 2:
        split = {"server_cpus": cpus[:-1], "client_cpus": cpus[-1:]}
        assert _bench_served.cpu_split(None) == _bench_served.cpu_split(True) == split
    os.sched_setaffinity(0, cpus[:1])  # this thread alone: one CPU
    try:
        assert _bench_served.cpu_split(None) is None
        with pytest.raises(SystemExit, match=r"--pin needs 2 or more CPUs.*--no-pin"):
            _bench_served.cpu_split(True)
    finally:
        os.sched_setaffinity(0, cpus)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs 2 CPUs")
def test_pinning_moves_every_server_thread_and_the_clients_and_undoes_itself() -> None:
    """A real process with several threads: all of them (and threads started later) on the
    server CPUs, this process's threads and its children on the client CPU, and this
    process back on all of its CPUs after the block, a failing one too."""
    code = (
        "import threading, time, sys\n"
        "ts = [threading.Thread(target=time.sleep, args=(60,), daemon=True) for _ in range(3)]\n"
        "[t.start() for t in ts]\n"
        "print('up', flush=True)\n"
        "sys.stdin.readline()\n"
        "t = threading.Thread(target=time.sleep, args=(60,), daemon=True); t.start()\n"
        "print('more', flush=True)\n"
        "time.sleep(60)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        assert server.stdout.readline() == "up\n"
        split = _bench_served.cpu_split(True)
        assert split is not None
        own_before = _allowed_cpus(os.getpid())
        failing_row = pytest.raises(RuntimeError, match="a row failed")
        with failing_row, _bench_served.pinned(server.pid, split):
            server.stdin.write("go\n")
            server.stdin.flush()
            assert server.stdout.readline() == "more\n"
            server_allowed = _allowed_cpus(server.pid)
            assert len(server_allowed) >= 5  # main, 3 sleepers, the later one
            wanted = {
                os.sched_getaffinity(tid) == set(split["server_cpus"]) for tid in server_allowed
            }
            assert wanted == {True}, server_allowed
            assert os.sched_getaffinity(0) == set(split["client_cpus"])
            child = subprocess.run(
                ["cat", "/proc/self/status"], capture_output=True, text=True, check=True
            )
            line = next(x for x in child.stdout.splitlines() if x.startswith("Cpus_allowed_list"))
            assert line.split(":")[1].strip() == str(split["client_cpus"][0])
            raise RuntimeError("a row failed")
        assert _allowed_cpus(os.getpid()) == own_before
    finally:
        server.kill()
        server.wait()


def test_report_recomputes_the_committed_targets(tmp_path: Path) -> None:
    results = json.loads((BENCHMARKS / "results" / "bench_serving.json").read_text())
    committed = results["served"]  # the layout from before backends: served[mode]
    t = _bench_report.targets(results)
    ip, served = results["in_process"], results["served"]["tensorflow"]

    assert served["plain"] is committed["plain"]
    signature = ip["signature_call"]["p50_ms"]
    assert t["latency_ratio"] == pytest.approx(served["plain"]["grpc_single"]["p50_ms"] / signature)
    parallel = ip["raw_scann_batched_qps_by_size"]["1024"]
    best = max(served[m]["grpc_qps_16"] for m in _bench_targets.BATCHING_MODES)
    assert t["throughput_fraction"] == pytest.approx(best / parallel)
    assert t["latency_met"] == (
        min(t["latency_ratio"], t["latency_ratio_native"]) <= _bench_targets.LATENCY_TARGET
    )
    results["targets"] = t
    text = _bench_report.table(results)
    assert "Target 1 (TensorFlow backend), served gRPC p50" in text
    assert "Target 2, batched served" in text
    assert "| tensorflow | served + batching, asyncio server gRPC, native client (h2load) |" in text
    _bench_report.plot(results, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_issue_13_verdicts_follow_the_rows_of_the_committed_pinned_run() -> None:
    results = json.loads((BENCHMARKS / "results" / "bench_serving_pinned_1m.json").read_text())
    served, signature = results["served"], results["in_process"]["signature_call"]["p50_ms"]
    t = _bench_targets.targets(results)
    verdicts = {v["target"]: v for v in t["native_targets"]}
    assert len(verdicts) == len(_bench_targets.NATIVE_TARGETS)
    for v in verdicts.values():
        assert v["met"] == (v["value"] <= v["limit"] if v["at_most"] else v["value"] >= v["limit"])

    def rows(mode: str, key: str, field: str) -> float:
        return float(served["native"][mode][key][field])

    # The p50 pair is one mode's: the one whose Predict p50 is closest to its own no-op's.
    by_mode = {
        m: rows(m, "c_single", "p50_ms") / rows(m, "c_noop_single", "p50_ms")
        for m in served["native"]
    }
    mode = min(by_mode, key=by_mode.__getitem__)
    assert verdicts["h2load p50 vs the no-op's"]["value"] == pytest.approx(by_mode[mode])
    assert verdicts["h2load p50 vs the signature call"]["value"] == pytest.approx(
        rows(mode, "c_single", "p50_ms") / signature
    )
    cpu = min(
        rows(m, "c_16", "server_cpu_us_per_call") / rows(m, "c_noop_16", "server_cpu_us_per_call")
        for m in served["native"]
    )
    assert verdicts["server CPU/Predict @16 vs the no-op's"]["value"] == pytest.approx(cpu)
    start = served["native"]["plain"]["server"]["start_to_serving_s"]
    assert verdicts["start to SERVING vs tensorflow"]["value"] == pytest.approx(
        start / served["tensorflow"]["plain"]["server"]["start_to_serving_s"]
    )
    met = sum(v["met"] for v in verdicts.values())
    assert f"Issue 13 (native backend), {met} of {len(verdicts)} targets met" in (
        _bench_report.summary(results)
    )

    # A ratio the run could not measure is not met; without the native backend, no verdicts.
    for cfg in served["native"].values():
        cfg["c_16"] = {"failed": "h2load exited 1"}
    t = _bench_targets.targets(results)
    cpu_verdict = next(v for v in t["native_targets"] if v["target"].startswith("server CPU"))
    assert cpu_verdict["value"] is None and cpu_verdict["met"] is False
    del served["native"]
    assert _bench_targets.targets(results)["native_targets"] == []


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


#: The rows every served configuration has (h2load's only where h2load is installed).
PYTHON_ROWS = ("grpc_noop_single", "grpc_noop_16", "grpc_single", "rest_single", "grpc_64x16")
PYTHON_ROWS += tuple(f"{kind}_{c}" for kind in ("grpc", "rest") for c in (1, 4, 16))
H2LOAD_ROWS = ("c_noop_single", "c_single", "c_noop_16", "c_1", "c_4", "c_16", "c_64x16")
#: The h2load rows measured in interleaved rounds (`_bench_status.measure_rounds`).
ROUNDS_ROWS = ("c_noop_single", "c_single", "c_noop_16", "c_16")


def _run_benchmark(out: Path, *args: str, timeout: float = 900) -> tuple[int, str]:
    """bench_serving.py to completion in its own process group: whatever it started
    (servers, load processes) is killed with the group when it overruns or fails."""
    from serve_helpers import TF_ENV

    process = subprocess.Popen(
        [sys.executable, str(BENCHMARKS / "bench_serving.py"), *args, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **TF_ENV},
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):  # leftovers only; none on success
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode, stdout


def test_the_benchmark_runs_end_to_end_at_a_tiny_size(tmp_path: Path) -> None:
    """Every mode, every row measured with no real errors (h2load's timed runs against the
    asyncio server included), and a backend that cannot start failed in isolation."""
    out = tmp_path / "bench"
    code, stdout = _run_benchmark(
        out,
        *("--num-candidates", "2000", "--dim", "8", "--num-queries", "300"),
        *("--latency-samples", "45", "--duration", "1", "--client-processes", "1"),
        *("--backends", "tensorflow,no_such_backend", "--h2load-rounds", "2"),
    )

    assert code == 0, stdout[-6000:]
    results = json.loads((out / "bench_serving.json").read_text())
    expected = PYTHON_ROWS + (H2LOAD_ROWS if _bench_h2load.h2load_path() else ())
    served = results["served"]["tensorflow"]
    assert list(served) == list(_bench_served.MODES)
    for mode, cfg in served.items():
        assert "failed" not in cfg, (mode, cfg["failed"])
        assert cfg["server"]["start_to_serving_s"] > 0 and cfg["server"]["rss_mib"] > 100
        for key in expected:
            row = cfg[key]
            assert "failed" not in row, (mode, key, row)
            assert row.get("p50_ms", row.get("qps")) > 0, (mode, key, row)
            assert row.get("real_errors", 0) == 0, (mode, key, row)
        for key in [k for k in ROUNDS_ROWS if k in expected]:  # interleaved, median kept
            rounds = cfg[key]["rounds"]
            assert len(rounds) == 2 and sorted(r["p50_ms"] for r in rounds)[0] > 0, (mode, key)
        assert cfg["grpc_64x16"]["rows_per_s"] == pytest.approx(64 * cfg["grpc_64x16"]["qps"])
        batching = _bench_served.MODES[mode][0]  # a batching server merges each request
        assert not batching or cfg["grpc_64x16"]["mean_batch_size"] >= 64, mode
    failed = results["served"]["no_such_backend"]
    assert list(failed) == list(_bench_served.MODES)
    assert all("no_such_backend" in cfg["failed"] for cfg in failed.values())

    assert results["pinning"] == _bench_served.cpu_split(None)  # on with 2 CPUs or more
    assert results["in_process"]["raw_scann_batched_serial_qps_by_size"]["64"] > 0
    ratios = results["targets"]["by_backend"]["tensorflow"]
    assert ratios["real_errors"] == 0 and ratios["failed_rows"] == []
    assert ratios["rows64_fraction_of_raw_serial64"] > 0 and ratios["rss_mib"] > 100
    table = (out / "bench_serving.md").read_text()
    rows_per_mode = 4 + (3 if _bench_h2load.h2load_path() else 0)  # see _bench_report
    assert table.count("| tensorflow | served") == len(served) * rows_per_mode
    assert "| no_such_backend | served: **failed** |" in table
    assert (out / "bench_serving.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
