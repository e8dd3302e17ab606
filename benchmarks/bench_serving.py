"""Benchmark scann-serve against in-process ScaNN, the SavedModel and brute force.

One run builds a clustered catalogue (default 1M candidates x 32 dims), tunes a ScaNN
tree + AH index to recall@10 >= 0.95 against brute force, publishes it as a real
SavedModel version, serves it with `scann-serve` (without and with --enable_batching, and
batching on --grpc_server_mode=asyncio; each on every backend of `--backends`) and
measures, on the same machine and in the same run:

  * raw in-process ScaNN (pybind): single-query latency; batched throughput at 16, 64
    and 1024 queries per call
    and ScaNN's one-thread `search_batched` at 64 and 1024 per call
  * the in-process SavedModel signature call (serving_default; 1 key, and 16 keys per call)
  * brute force (numpy): single-query latency and batched throughput
  * served gRPC and REST: p50/p99 for one client (official stubs); throughput at 1/4/16
    concurrent calls (gRPC: `_bench_load`'s client processes with pre-serialized requests,
    reporting server and client CPU per call and the mean batch the server formed)
  * requests carrying 64 queries each from 16 clients (rows/s), against `search_batched`
    at 64 per call
  * the floor: a no-op gRPC call (grpc.health.v1 Check) on the same server
  * per backend: the server's start-to-SERVING time and resident memory (/proc)

While a server is measured (after its start-to-SERVING time), it runs on every CPU but
the last and the clients (h2load, the Python load processes, this process) on the last one,
when the machine has 2 or more (`--pin`/`--no-pin`): load generator and server then stop
taking turns on one core, the nearest one machine comes to a client on another machine.

Every served call is counted by status: the calls an h2load timed run cancels at its end
are told apart from real errors, which the table reports. A configuration or row that
fails is a row marked failed with its reason; the others still run, and
<out>/bench_serving.json is rewritten after every row, so a crash keeps what was measured.

Writes <out>/bench_serving.{json,png,md} and prints the markdown table.
Targets (issue 3): served single-client gRPC p50 <= 1.5x the in-process signature call;
served gRPC throughput with batching at 16 clients >= 25% of raw batched ScaNN (1024/call).

    uv run --no-sync python benchmarks/bench_serving.py --model-dir /tmp/m1m   # minutes
    uv run --no-sync python benchmarks/bench_serving.py --num-candidates 100000 --duration 3
    uv run --no-sync python benchmarks/bench_serving.py --report out/bench_serving/bench_serving.json

With --external-target HOST:PORT the same client-side measurements also run against
another server that speaks TF Serving's API and serves the same version under the same
model name, e.g. the TF Serving + ScaNN image (BUILD.md) on a Docker host:

    uv run --no-sync python benchmarks/bench_serving.py --model-dir /srv/m1m   # exports it
    docker run -d -p 8500:8500 -v /srv/m1m:/models/retrieval -e MODEL_NAME=retrieval \\
        scann-serving/tf-serving-scann:2.20.0-scann1.4.2
    uv run --no-sync python benchmarks/bench_serving.py --model-dir /srv/m1m \\
        --external-target 127.0.0.1:8500 --external-label "TF Serving + ScaNN"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_data import K, catalogue, log, publish, tune
from _bench_inprocess import in_process
from _bench_report import plot, table, targets
from _bench_served import (
    MODES,
    cpu_split,
    default_backends,
    external,
    has_backend_flag,
    served,
)
from _bench_status import reason
from scann_serving.export import IndexConfig
from scann_serving.export.evaluation import exact_top_k


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-candidates", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--num-queries", type=int, default=2000)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--latency-samples", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput point")
    parser.add_argument(
        "--h2load-rounds",
        type=int,
        default=3,
        help="interleaved rounds of the h2load Predict and no-op rows (their median is kept)",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="while measuring a server, run it on every CPU but the last and the clients on "
        "the last (default: on with 2 or more CPUs)",
    )
    parser.add_argument("--client-processes", type=int, default=2, help="gRPC load processes")
    parser.add_argument("--batch-timeout-micros", type=int, default=0, help="batching parameter")
    parser.add_argument("--num-batch-threads", type=int, default=1, help="batching parameter")
    parser.add_argument(
        "--server-flag", action="append", default=[], help="extra scann-serve flag (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/bench_serving"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, help="only redraw table and PNG from this JSON")
    parser.add_argument("--spread", type=float, default=1.0, help="within-cluster noise scale")
    parser.add_argument(
        "--model-dir", type=Path, help="keep the exported model here and reuse it on the next run"
    )
    parser.add_argument(
        "--only", choices=["all", *MODES], default="all", help="served configuration to run"
    )
    parser.add_argument(
        "--backends",
        type=lambda text: [b for b in text.split(",") if b],
        help="comma-separated scann-serve backends to measure (default: tensorflow, plus "
        "native when scann-serve --help lists --backend)",
    )
    parser.add_argument(
        "--external-target",
        help="HOST:PORT of another TF Serving API server serving the same version (measured too)",
    )
    parser.add_argument("--external-model", default="retrieval", help="its model name")
    parser.add_argument("--external-label", default="external server", help="its name in the table")
    return parser.parse_args()


def exported_search(version_dir: Path, tuned: IndexConfig) -> IndexConfig:
    """`tuned` with the leaves searched and reordering of the reused version's manifest.

    Tuning is re-run on every start and ScaNN's training is not bit-for-bit repeatable, so
    a fresh sweep can stop at another num_leaves_to_search than the exported version did;
    raw and served ScaNN must search the same way to be compared."""
    from scann_serving.server._preflight import read_manifest

    manifest = read_manifest(version_dir)
    if manifest is None:
        raise SystemExit(f"{version_dir} has no scann_manifest.json; delete the --model-dir")
    index = manifest["index"]
    if index["num_leaves"] != tuned.num_leaves:
        raise SystemExit(
            f"{version_dir} has {index['num_leaves']} leaves, this catalogue's index "
            f"{tuned.num_leaves}; delete the --model-dir or pass another one"
        )
    if index["num_leaves_to_search"] != tuned.num_leaves_to_search:
        log(
            f"reused {version_dir} searches {index['num_leaves_to_search']} leaves (this "
            f"sweep stopped at {tuned.num_leaves_to_search}); raw ScaNN searches as it does"
        )
    return tuned.with_search(index["num_leaves_to_search"], index["num_reordering_candidates"])


def save_json(results: dict, out: Path) -> None:
    """bench_serving.json under `out`, replaced atomically (a crash mid-write keeps the
    previous one)."""
    partial = out / "bench_serving.json.partial"
    partial.write_text(json.dumps(results, indent=2))
    partial.replace(out / "bench_serving.json")


def write(results: dict, out: Path) -> None:
    """bench_serving.{json,png,md} under `out`; prints the table."""
    save_json(results, out)
    plot(results, out / "bench_serving.png")
    report = table(results)
    (out / "bench_serving.md").write_text(report + "\n")
    print(report)
    log(f"wrote {out}/bench_serving.json, .png, .md")


def serve_all(
    base: Path,
    num_queries: int,
    args: argparse.Namespace,
    workdir: Path,
    results: dict,
    save: Callable[[], None],
) -> None:
    """Every served configuration (backend x mode) into results["served"][backend][mode];
    a server that does not start is that configuration's failure, not the run's."""
    for backend in args.backends:
        for mode in [m for m in MODES if args.only in ("all", m)]:
            cfg: dict = {}
            results["served"].setdefault(backend, {})[mode] = cfg
            try:
                served(base, num_queries, args, (backend, mode), workdir, cfg, save)
            except Exception as exc:  # isolated: the next configuration still runs
                cfg["failed"] = reason(exc)
                log(f"configuration {backend}/{mode} FAILED: {exc}")
            save()
    if args.external_target:
        ext = results["external"] = {"label": args.external_label}
        try:
            external(args.external_target, args.external_model, num_queries, args, ext, save)
        except Exception as exc:  # e.g. unreachable: the rows measured so far stay
            ext.update(failed=reason(exc), target=args.external_target)
        save()


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        results = json.loads(args.report.read_text())
        results["targets"] = targets(results)
        write(results, args.out)
        return
    args.server_has_backend_flag = has_backend_flag()
    args.backends = args.backends or default_backends(args.server_has_backend_flag)
    args.cpu_split = cpu_split(args.pin)
    load_average = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"catalogue: {args.num_candidates:,} x {args.dim}, {args.num_queries} queries")
    log(f"backends: {', '.join(args.backends)}")
    log(f"pinning: {args.cpu_split or 'off'}")
    items, queries = catalogue(
        args.num_candidates, args.dim, args.num_queries, args.seed, args.spread
    )
    truth = exact_top_k(queries[:1000], items, K)
    config, searcher, tuning = tune(items, queries[:1000], truth, args.target_recall)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        base = args.model_dir or Path(tmp) / "retrieval"
        existing = sorted(p for p in base.glob("[0-9]*") if p.is_dir()) if base.exists() else []
        version_dir = existing[-1] if existing else publish(base, items, queries, config)
        if existing:  # measure raw ScaNN with the search settings the served version uses
            config = exported_search(version_dir, config)
        log("measuring in-process paths")
        n = args.latency_samples
        ip = in_process(truth, searcher, config, items, queries, version_dir, n)
        if existing and ip["exported_recall_at_10"] < args.target_recall - 0.05:
            raise SystemExit(
                f"--model-dir {base}: version {version_dir.name} reaches recall@10 "
                f"{ip['exported_recall_at_10']:.3f} on this catalogue, so it was exported from "
                "another one (other --num-candidates/--dim/--seed/--spread); delete it or pass "
                "another --model-dir"
            )
        del searcher, items  # free the catalogue before starting servers
        results = {
            "num_candidates": args.num_candidates,
            "dim": args.dim,
            "spread": args.spread,
            "command": " ".join(sys.argv),
            "load_average": load_average,
            "index": config.to_dict(),
            "recall_at_10": ip["exported_recall_at_10"],
            "tuning_recall_at_10": tuning.chosen.recall if tuning else 1.0,
            "tuning_sweep": tuning.to_dict()["sweep"] if tuning else [],
            "cpus": os.cpu_count(),
            "pinning": args.cpu_split,
            "backends": args.backends,
            "in_process": ip,
            "served": {},
        }
        save_json(results, args.out)
        serve_all(
            base, len(queries), args, Path(tmp), results, lambda: save_json(results, args.out)
        )
    if args.only != "all":
        print(json.dumps({"in_process": ip, "served": results["served"]}, indent=1))
        return
    results["targets"] = targets(results)
    write(results, args.out)


if __name__ == "__main__":
    main()
