"""Filtered retrieval: recall@10 and latency of `retrieve_filtered` across selectivities.

One run builds the benchmark's clustered catalogue (`_bench_data.catalogue`), tunes its
ScaNN index for recall@10 >= 0.95 unfiltered (as `scann-export --target-recall` does),
gives every candidate synthetic attributes whose tokens pass exactly 50 %, 10 %, 1 %,
0.1 % and 0.01 % of the catalogue, builds the exported module in process and, for each
selectivity, calls `retrieve_filtered` once per query, measuring recall@10 against exact
filtered brute force (numpy) and the p50 latency, next to the unfiltered `retrieve`; in
the same run the native backend's `retrieve_filtered` (numpy + ScaNN's pybind twin of the
same index, as `scann-serve --backend=native` runs it) answers the same queries, and its
p50, recall and agreement with the graph are reported beside.
With `--modes auto,scann,exact` it also runs with the exact path switched off and with
only the exact path, which is how the switch point was chosen. Not part of `make test`.

    .venv/bin/python benchmarks/bench_filtering.py --num-candidates 100000
    .venv/bin/python benchmarks/bench_filtering.py --num-candidates 1000000 --modes auto

Writes benchmarks/results/bench_filtering.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_data import MAX_K, K, catalogue, log, tune

#: Token -> share of the catalogue holding it (nested: a p1 candidate is also p10 and p50).
SELECTIVITIES = {"p50": 0.5, "p10": 0.1, "p1": 0.01, "p0.1": 0.001, "p0.01": 0.0001}
RESULTS = Path(__file__).resolve().parent / "results"


def attributes(n: int, seed: int) -> Any:
    """The `bucket` namespace (nested selectivity tokens) and a numeric `u` in [0, 1)."""
    from scann_serving.export._attributes import AttributeTable

    u = np.random.default_rng(seed + 1).random(n)
    names = sorted(SELECTIVITIES)
    vocabulary = np.asarray([f"bucket={name}" for name in names], dtype=object)
    holds = np.stack([u < SELECTIVITIES[name] for name in names], axis=1)
    per_row = [np.flatnonzero(row).tolist() for row in holds]
    return AttributeTable.build(("bucket",), vocabulary, per_row, ("u",), u[:, None], "bench"), u


def module(
    items: np.ndarray,
    queries: np.ndarray,
    config: Any,
    table: Any,
    exact_max: int | None,
    searcher: Any,
) -> Any:
    """The exported module over the catalogue (a lookup tower: query key i -> queries[i])."""
    from scann_serving.export._module import RetrievalModule
    from scann_serving.export.testing import TinyModelSpec, _lookup_tower

    spec = TinyModelSpec(1, 1, items.shape[1], 0)
    spec.users = np.asarray([str(i) for i in range(len(queries))], dtype=object)
    spec.user_embeddings = queries
    return RetrievalModule(
        query_model=_lookup_tower(spec),
        identifiers=np.asarray([str(i) for i in range(len(items))], dtype=object),
        searcher=searcher,
        index_config=config,
        embedding_dim=items.shape[1],
        k=K,
        max_k=MAX_K,
        attributes=table,
        embeddings=items,
        exact_max_passing=exact_max,
    )


def native_index(
    items: np.ndarray,
    queries: np.ndarray,
    config: Any,
    table: Any,
    exact_max: int | None,
    searcher: Any,
) -> Any:
    """The native bundle's search over the very same index, built in process."""
    from scann_serving.export._index import pybind_twin
    from scann_serving.export._native import filter_settings, search_settings
    from scann_serving.server._attribute_files import AttributeIndex
    from scann_serving.server._native_filter import FilteredSearch
    from scann_serving.server._native_search import TOWER_STRING, NativeIndex, QueryTable

    filtered = FilteredSearch(
        AttributeIndex(table.layout()), items, filter_settings(config, len(items), exact_max)
    )
    keys = {str(i).encode(): i for i in range(len(queries))}
    return NativeIndex(
        pybind_twin(searcher, items, config, K),
        np.asarray([str(i).encode() for i in range(len(items))], dtype=object),
        search_settings(config, K, MAX_K),
        QueryTable(TOWER_STRING, queries, keys=keys, oov_row=0),
        filtered,
    )


def measure(
    mod: Any,
    native: Any,
    items: np.ndarray,
    queries: np.ndarray,
    u: np.ndarray,
    calls: int,
) -> dict[str, Any]:
    """Recall@10 and latency per selectivity (graph and native), and of unfiltered `retrieve`."""
    import tensorflow as tf

    filtered = mod.retrieve_filtered.get_concrete_function()
    plain = mod.retrieve.get_concrete_function()
    empty = tf.constant([[""]])
    k = tf.constant(K)
    keys = [tf.constant([str(i)]) for i in range(calls)]
    scores = queries[:calls] @ items.T

    def timed(fn: Any) -> tuple[list[float], list[Any]]:
        for key in keys[:10]:  # warm the index and the traced graph
            fn(key)
        out, spent = [], []
        for key in keys:
            started = time.perf_counter()
            result = fn(key)
            spent.append((time.perf_counter() - started) * 1e3)
            out.append(result)
        return spent, out

    spent, _ = timed(lambda key: plain(query=key, k=k))
    report: dict[str, Any] = {
        "unfiltered": {"p50_ms": float(np.median(spent)), "p99_ms": float(np.percentile(spent, 99))}
    }
    native_empty = np.asarray([[b""]], dtype=object)
    for name, share in SELECTIVITIES.items():
        allow = tf.constant([[f"bucket={name}"]])
        spent, out = timed(
            lambda key, allow=allow: filtered(
                query=key, k=k, allow=allow, deny=empty, numeric=empty
            )
        )
        native_allow = np.asarray([[f"bucket={name}".encode()]], dtype=object)
        native_spent, native_out = timed(
            lambda key, allow=native_allow: native.retrieve_filtered(
                np.asarray([key.numpy()[0]], dtype=object), K, allow, native_empty, native_empty
            )
        )
        passing = u < share
        recalls, native_recalls, same = [], [], 0
        for row, (result, answer) in enumerate(zip(out, native_out, strict=True)):
            got = [int(i) for i in result["identifiers"].numpy()[0] if i]
            native_got = [int(i) for i in answer[0][0] if i]
            assert all(passing[got]) and all(passing[native_got]), "a candidate fails the filter"
            masked = np.where(passing, scores[row], -np.inf)
            want = set(np.argsort(-masked, kind="stable")[: min(K, int(passing.sum()))].tolist())
            recalls.append(len(set(got) & want) / max(1, len(want)))
            native_recalls.append(len(set(native_got) & want) / max(1, len(want)))
            same += got == native_got
        report[name] = {
            "selectivity": share,
            "passing": int(passing.sum()),
            "recall_at_10": float(np.mean(recalls)),
            "p50_ms": float(np.median(spent)),
            "p99_ms": float(np.percentile(spent, 99)),
            "native_recall_at_10": float(np.mean(native_recalls)),
            "native_p50_ms": float(np.median(native_spent)),
            "native_p99_ms": float(np.percentile(native_spent, 99)),
            "native_same_identifiers": same / len(out),
        }
        log(f"  {name:>6}: {report[name]}")
    return report


def markdown(results: dict[str, Any]) -> str:
    """The results as the README's table."""
    lines = [
        f"{results['num_candidates']:,} candidates x {results['dim']} dims, {results['queries']} queries, "
        f"index {results['index']}, unfiltered recall@10 {results['unfiltered_recall']:.3f}",
        "",
        "| mode | selectivity | passing | recall@10 | p50 ms | p99 ms | p50 vs unfiltered "
        "| native recall@10 | native p50 ms | native p99 ms | same ids as TF |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, report in results["modes"].items():
        base = report["unfiltered"]["p50_ms"]
        lines.append(
            f"| {mode} | unfiltered | all | {results['unfiltered_recall']:.3f} | {base:.2f} | {report['unfiltered']['p99_ms']:.2f} | 1.0x | | | | |"
        )
        for name in SELECTIVITIES:
            r = report[name]
            lines.append(
                f"| {mode} | {r['selectivity'] * 100:g} % | {r['passing']:,} | {r['recall_at_10']:.3f} | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p50_ms'] / base:.1f}x | "
                f"{r['native_recall_at_10']:.3f} | {r['native_p50_ms']:.2f} | "
                f"{r['native_p99_ms']:.2f} | {r['native_same_identifiers'] * 100:.0f} % |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-candidates", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--queries", type=int, default=200, help="queries per selectivity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument(
        "--modes",
        default="auto,scann,exact",
        help="auto: the exported switch; scann: never exact; exact: always exact",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_filtering")
    args = parser.parse_args(argv)
    from scann_serving.export._evaluation import exact_top_k, recall_at_k
    from scann_serving.export._index import build_tf_searcher

    log(f"catalogue: {args.num_candidates:,} x {args.dim}, {args.queries} queries")
    items, queries = catalogue(args.num_candidates, args.dim, args.queries, args.seed, args.spread)
    truth = exact_top_k(queries, items, K)
    config, searcher, _ = tune(items, queries, truth, args.target_recall)
    found, _ = searcher.search_batched(queries, K, **config.search_kwargs(K))
    table, u = attributes(args.num_candidates, args.seed)
    modes = {"auto": None, "scann": 0, "exact": args.num_candidates}
    results: dict[str, Any] = {
        "num_candidates": args.num_candidates,
        "dim": args.dim,
        "queries": args.queries,
        "index": config.to_dict(),
        "unfiltered_recall": recall_at_k(np.asarray(found), truth, K),
        "modes": {},
    }
    for mode in args.modes.split(","):
        log(f"mode {mode}: building the module")
        tf_searcher = build_tf_searcher(items, config, K)
        mod = module(items, queries, config, table, modes[mode], tf_searcher)
        native = native_index(items, queries, config, table, modes[mode], tf_searcher)
        results["modes"][mode] = measure(mod, native, items, queries, u, args.queries)
        del mod, native
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
