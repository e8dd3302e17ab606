"""Building, tuning and evaluating the exported index (the `measure` step of `export_model`).

The index is trained once as the TensorFlow-op searcher the SavedModel carries; its pybind
twin (the very same index) is tuned per band of k (`_bands`) and evaluated against exact
brute force: recall@k at every k the model serves, factorized top-k accuracy with each
level searched as `retrieve(k=level)` searches it, and single-query latency per band.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scann_serving.export._bands import (
    DEFAULT_TARGET_RECALL,
    DEFAULT_TUNING_BUDGET_S,
    REPORTED_KS,
    BandSweep,
    BandTuning,
    band_limits,
    tune_bands,
)
from scann_serving.export._config import ExportConfig
from scann_serving.export._evaluation import (
    TOP_K_LEVELS,
    exact_top_k,
    factorized_top_k,
    paired_single_query_ms,
    recall_at_k,
    recall_curve,
    scann_top_k,
    searcher_latency,
    single_stats,
)
from scann_serving.export._index import (
    IndexConfig,
    band_kwargs,
    build_pybind_searcher,
    build_tf_searcher,
    pybind_twin,
    single_band,
)
from scann_serving.export._types import Catalogue, ExportedSearcher, Progress, Queries, Searcher
from scann_serving.server._native_search import SearchBand

TOP_K_DEPTH = 100


@dataclass
class Measured:
    """The final index config, its band table and tuning, evaluation and the searchers.

    Attributes:
        index_config: The index; its scalar knobs are the default k's band.
        bands: The search-band table the module and the native bundle hold.
        tuning: The per-band sweep, or None (brute force, or knobs given explicitly).
        evaluation: The manifest's `evaluation` block.
        band_report: The manifest's `search_bands` block: each band's knobs, its worst
            recall@k on the evaluation queries and its single-query latency.
    """

    index_config: IndexConfig
    bands: tuple[SearchBand, ...]
    tuning: BandTuning | None
    evaluation: dict[str, Any]
    tf_searcher: ExportedSearcher
    twin: Searcher
    band_report: list[dict[str, Any]] = field(default_factory=list)


def measure(
    config: ExportConfig,
    index_config: IndexConfig,
    catalogue: Catalogue,
    queries: Queries,
    progress: Progress,
) -> Measured:
    """Builds the exported index once, tunes its query-time knobs per band of k and
    evaluates it against brute force, through an in-process twin of the same index."""
    n = len(catalogue.embeddings)
    max_k = min(config.max_k, n)
    depth = min(max(TOP_K_DEPTH, config.k, max_k), n)
    progress(f"exact top-{depth} by brute force for {len(queries.embeddings):,} held-out queries")
    exact = exact_top_k(queries.embeddings, catalogue.embeddings, depth)
    tf_searcher = _timed_build(catalogue, index_config, config.k, progress)
    searcher = pybind_twin(tf_searcher, catalogue.embeddings, index_config, config.k)
    tuning = tune(config, index_config, searcher, queries, exact, n, progress)
    bands = tuning.table if tuning is not None else single_band(index_config, config.k)
    if tuning is not None:
        default = tuning.result_for(config.k).chosen
        index_config = index_config.with_search(
            default.num_leaves_to_search, default.num_reordering_candidates
        )
    evaluation, report = evaluate(
        config, searcher, catalogue, queries, exact, bands, max_k, progress
    )
    # Cross-check through the TensorFlow op the SavedModel calls, with the same knobs.
    eval_q = queries.embeddings[: config.eval_queries]
    found, _ = tf_searcher.search_batched(eval_q, config.k, **band_kwargs(bands, config.k))
    evaluation["recall_at_k_exported_index"] = recall_at_k(
        np.asarray(found), exact[: len(eval_q)], config.k
    )
    return Measured(index_config, bands, tuning, evaluation, tf_searcher, searcher, report)


def tuning_target(config: ExportConfig, index_config: IndexConfig) -> tuple[float, str] | None:
    """(target recall, source) of the sweep, or None when nothing is tuned: brute force is
    exact, and explicit `--num-leaves-to-search`/`--num-reordering-candidates` without
    `--target-recall` are the user's choice. Otherwise the default tunes to 0.95."""
    if index_config.brute_force:
        return None
    if config.target_recall is not None:
        return config.target_recall, "--target-recall"
    explicit = (config.index.num_leaves_to_search, config.index.num_reordering_candidates)
    if any(knob is not None for knob in explicit):
        return None
    return DEFAULT_TARGET_RECALL, "default"


def tune(
    config: ExportConfig,
    index_config: IndexConfig,
    searcher: Searcher,
    queries: Queries,
    exact: np.ndarray,
    num_candidates: int,
    progress: Progress,
) -> BandTuning | None:
    """Runs the per-band sweep on the in-process twin, or returns None (`tuning_target`)."""
    target = tuning_target(config, index_config)
    if target is None:
        if index_config.brute_force and config.target_recall is not None:
            progress("--target-recall: the index is brute force (exact), nothing to tune")
        return None
    recall, source = target
    budget = config.tuning_budget
    if budget is None and source == "default":
        budget = DEFAULT_TUNING_BUDGET_S
    eval_n = min(config.eval_queries, len(queries.embeddings))
    q = queries.embeddings[:eval_n]
    sweep = BandSweep(searcher, index_config, q, exact[:eval_n], num_candidates)
    limits = band_limits(config.k, min(config.max_k, num_candidates))
    return tune_bands(
        sweep, limits, target_recall=recall, source=source, budget_seconds=budget,
        progress=progress,
    )  # fmt: skip


def _timed_build(
    catalogue: Catalogue, cfg: IndexConfig, k: int, progress: Progress
) -> ExportedSearcher:
    size = len(catalogue.embeddings)
    progress(f"building the ScaNN index over {size:,} candidates: {describe(cfg)}")
    started = time.perf_counter()
    searcher = build_tf_searcher(catalogue.embeddings, cfg, k)
    progress(f"  built in {time.perf_counter() - started:.1f}s")
    return searcher


def describe(cfg: IndexConfig) -> str:
    """The index in one line."""
    if cfg.brute_force:
        return "brute force"
    return (
        f"tree {cfg.num_leaves} leaves, search {cfg.num_leaves_to_search}, "
        f"AH {cfg.dimensions_per_block} dims/block, reorder {cfg.num_reordering_candidates}"
    )


def evaluate(
    config: ExportConfig,
    searcher: Searcher,
    catalogue: Catalogue,
    queries: Queries,
    exact: np.ndarray,
    bands: tuple[SearchBand, ...],
    max_k: int,
    progress: Progress,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The `evaluation` block and the `search_bands` report, searching as the model serves.

    recall@k for every k from 1 to max_k (each with its band's knobs), top-k accuracy with
    each level searched as `retrieve(k=level)` does, and latency against brute force.
    """
    k, n = config.k, len(catalogue.embeddings)
    progress("evaluating: recall@k for every k served, factorized top-k accuracy, latency")
    eval_q = queries.embeddings[: config.eval_queries]
    curve = served_recall(searcher, eval_q, exact[: len(eval_q)], bands, max_k)
    worst = int(np.argmin(curve))
    out: dict[str, Any] = {
        "k": k,
        "queries": len(eval_q),
        "recall_at_k": float(curve[k - 1]),
        "recall_by_k": {str(v): float(curve[v - 1]) for v in reported_ks(max_k)},
        "recall_worst": {"at": worst + 1, "recall": float(curve[worst])},
    }
    if queries.pair_rows is not None and queries.pair_items is not None and len(queries.pair_rows):
        out["test_pairs"] = len(queries.pair_rows)
        out["factorized_top_k"] = _accuracy(searcher, queries, exact, bands, max_k, n)
    brute_config = IndexConfig(num_reordering_candidates=min(TOP_K_DEPTH, n))
    brute = build_pybind_searcher(catalogue.embeddings, brute_config, k)
    lat_q = config.latency_queries
    bf = searcher_latency(brute, eval_q, k, brute_config.search_kwargs(k), single_queries=lat_q)
    sc = searcher_latency(searcher, eval_q, k, band_kwargs(bands, k), single_queries=lat_q)
    # The single-query figures of the comparison: both searches timed query by query in turn.
    at_k = _paired(searcher, brute, eval_q, k, band_kwargs(bands, k), lat_q)
    sc |= single_stats(at_k[0])
    bf |= single_stats(at_k[1])
    out["latency"] = {
        "brute_force": bf,
        "scann": sc,
        "speedup_single_p50": bf["single_p50_ms"] / sc["single_p50_ms"],
        "speedup_batch": bf["batch_ms"] / sc["batch_ms"],
    }
    report = []
    lowest = 1
    for band in bands:
        top = min(band.up_to_k, max_k) if band is not bands[-1] else max_k
        if top < lowest:
            continue
        # The band serving the default k at its top reports the figures above (one run).
        sc_ms, bf_ms = (
            at_k
            if top == k
            else _paired(searcher, brute, eval_q, top, band_kwargs(bands, top), lat_q)
        )
        scann_p50, brute_p50 = statistics.median(sc_ms), statistics.median(bf_ms)
        report.append(
            {
                **band.to_dict(),
                "serves_k": [lowest, top],
                "worst_recall": float(curve[lowest - 1 : top].min()),
                "single_p50_ms": scann_p50,
                "brute_force_single_p50_ms": brute_p50,
                "speedup_single_p50": brute_p50 / scann_p50,
            }
        )
        lowest = top + 1
    return out, report


def reported_ks(max_k: int) -> list[int]:
    """The k's recall is reported at: 1, 10, 50 and max_k, those <= max_k."""
    return sorted({v for v in (*REPORTED_KS, max_k) if v <= max_k})


def served_recall(
    searcher: Searcher,
    queries: np.ndarray,
    exact: np.ndarray,
    bands: tuple[SearchBand, ...],
    max_k: int,
) -> np.ndarray:
    """recall@k for k = 1..max_k as `retrieve(k)` searches (float64 `[max_k]`).

    The k's sharing knobs (leaves and `pre_reorder_num_neighbors`) are answered by one
    search at the largest of them: ScaNN's top-k is then a prefix of it.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for k in range(1, max_k + 1):
        knobs = band_kwargs(bands, k)
        key = (knobs.get("leaves_to_search", -1), knobs.get("pre_reorder_num_neighbors", -1))
        groups.setdefault(key, []).append(k)
    curve = np.zeros(max_k)
    for ks in groups.values():
        found = scann_top_k(searcher, queries, ks[-1], band_kwargs(bands, ks[-1]))
        part = recall_curve(found, exact)
        curve[np.asarray(ks) - 1] = part[np.asarray(ks) - 1]
    return curve


def _accuracy(
    searcher: Searcher,
    queries: Queries,
    exact: np.ndarray,
    bands: tuple[SearchBand, ...],
    max_k: int,
    n: int,
) -> dict[str, dict[str, float]]:
    """Factorized top-k accuracy of brute force and of ScaNN searched per level's band."""
    assert queries.pair_rows is not None and queries.pair_items is not None
    levels = sorted({v for v in (*TOP_K_LEVELS, max_k) if v <= exact.shape[1]})
    scann: dict[str, float] = {}
    for level in levels:
        top = scann_top_k(searcher, queries.embeddings, level, band_kwargs(bands, level))
        scann |= factorized_top_k(top, queries.pair_rows, queries.pair_items, (level,))
    return {
        "brute_force": factorized_top_k(exact, queries.pair_rows, queries.pair_items, levels),
        "scann": scann,
        # What a random ranking scores: the bar training must clear.
        "chance": {f"top_{lv}": min(1.0, lv / n) for lv in levels},
    }


def _paired(
    searcher: Searcher, brute: Searcher, queries: np.ndarray, k: int, knobs: Any, count: int
) -> tuple[list[float], list[float]]:
    """Single-query times (ms) of ScaNN with `knobs` and of brute force, taken in turn."""
    return paired_single_query_ms(
        lambda q: searcher.search(q, final_num_neighbors=k, **knobs),
        lambda q: brute.search(q, final_num_neighbors=k),
        queries,
        count,
    )
