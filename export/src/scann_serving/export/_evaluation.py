"""Measuring an index: exact top-k, recall against brute force, top-k accuracy, latency.

Everything here is in-process on numpy arrays and ScaNN pybind searchers (the same index
config the SavedModel carries), so measuring costs no TensorFlow overhead.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scann_serving.export._types import Searcher, SearchKnobs

TOP_K_LEVELS = (1, 5, 10, 50, 100)
#: `paired_single_query_ms`: queries per block of one search, and untimed calls before each.
PAIRED_BLOCK = 20
PAIRED_WARMUP = 3
_CHUNK_BYTES = 256 * 2**20


def exact_top_k(queries: np.ndarray, embeddings: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows of `embeddings` by dot product, best first; int `[len(queries), k]`.

    Scores are computed in chunks of queries so a million-row catalogue fits in memory.
    """
    k = min(k, len(embeddings))
    chunk = max(1, _CHUNK_BYTES // (4 * len(embeddings)))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        scores = queries[start : start + chunk] @ embeddings.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[start : start + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(approximate: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k."""
    hits = [len(set(a[:k]) & set(e[:k])) for a, e in zip(approximate, exact, strict=True)]
    return float(np.mean(hits) / min(k, exact.shape[1])) if hits else float("nan")


def recall_curve(approximate: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """recall@k for every k from 1 to `approximate.shape[1]` at once, float64 `[width]`.

    Entry i is `recall_at_k(approximate, exact, i + 1)` when each row of `approximate` is
    the answer of one search whose prefixes are the answers at smaller k (the same knobs:
    ScaNN's top-k is the first k of its reordered candidates).
    """
    width = approximate.shape[1]
    if width == 0 or len(approximate) == 0:
        return np.zeros(width)
    truth = exact[:, :width]
    same = approximate[:, :, None] == truth[:, None, :]  # [q, found j, exact rank r]
    rank = np.where(same.any(axis=2), same.argmax(axis=2), width)  # exact rank of found j
    ks = np.arange(1, width + 1)
    # A found j counts at k when j < k and its exact rank < k: cumulate over k by both.
    hits = np.zeros((len(approximate), width + 2), np.int64)
    np.add.at(hits, (np.arange(len(rank))[:, None], np.maximum(rank, np.arange(width)) + 1), 1)
    return np.cumsum(hits, axis=1)[:, 1 : width + 1].mean(axis=0) / np.minimum(ks, exact.shape[1])


def scann_top_k(searcher: Searcher, queries: np.ndarray, k: int, knobs: SearchKnobs) -> np.ndarray:
    """Batched ScaNN search with query-time `knobs` (`IndexConfig.search_kwargs`); indices
    `[len(queries), k]`."""
    indices, _ = searcher.search_batched(queries, final_num_neighbors=k, **knobs)
    return np.asarray(indices, dtype=np.int64)


def factorized_top_k(
    top_indices: np.ndarray,
    query_rows: np.ndarray,
    true_items: np.ndarray,
    levels: Sequence[int] = TOP_K_LEVELS,
) -> dict[str, float]:
    """TFRS's FactorizedTopK accuracy: the share of test pairs whose item is in the top k.

    Args:
        top_indices: Retrieved candidate rows per distinct test user, `[users, >=max(levels)]`.
        query_rows: For each test pair, the row of its user in `top_indices`.
        true_items: For each test pair, the candidate row of its item.
    """
    out: dict[str, float] = {}
    for level in levels:
        if level > top_indices.shape[1]:
            continue
        hit = (top_indices[query_rows, :level] == true_items[:, None]).any(axis=1)
        out[f"top_{level}"] = float(hit.mean()) if len(hit) else float("nan")
    return out


def latency(
    search_one: Callable[[np.ndarray], Any],
    search_batch: Callable[[np.ndarray], Any],
    queries: np.ndarray,
    *,
    single_queries: int = 200,
    batch_size: int = 256,
) -> dict[str, float]:
    """Single-query latency percentiles and batched throughput, in milliseconds.

    A few untimed calls come first so one-time costs do not count.
    """
    times = single_query_ms(search_one, queries, single_queries)
    batch = _tile(queries, batch_size)
    search_batch(batch)
    started = time.perf_counter()
    rounds = 3
    for _ in range(rounds):
        search_batch(batch)
    batch_ms = (time.perf_counter() - started) * 1e3 / rounds
    return {
        "single_p50_ms": statistics.median(times),
        "single_p95_ms": float(np.percentile(times, 95)),
        "single_mean_ms": statistics.fmean(times),
        "batch_size": batch_size,
        "batch_ms": batch_ms,
        "batch_qps": batch_size / (batch_ms / 1e3),
    }


def single_query_ms(
    search_one: Callable[[np.ndarray], Any], queries: np.ndarray, n: int
) -> list[float]:
    """Wall time of `search_one` on each of the first `n` queries (after 5 untimed calls)."""
    singles = queries[: max(1, n)]
    for q in singles[:5]:
        search_one(q)
    times = []
    for q in singles:
        started = time.perf_counter()
        search_one(q)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def paired_single_query_ms(
    first: Callable[[np.ndarray], Any],
    second: Callable[[np.ndarray], Any],
    queries: np.ndarray,
    n: int,
) -> tuple[list[float], list[float]]:
    """Wall times of two searches on each of the first `n` queries, in alternating blocks.

    On a shared machine the load changes from second to second; timing the two searches of
    a comparison in alternating blocks of `PAIRED_BLOCK` queries puts both under the same
    load over the same stretch of time, so their ratio (the speed-up) does not depend on
    when each happened to run. Each block starts with `PAIRED_WARMUP` untimed calls: a
    brute-force search streams the whole catalogue through the caches, and ScaNN serving
    queries back to back does not pay for refilling them on every query.
    """
    singles = queries[: max(1, n)]
    times: tuple[list[float], list[float]] = ([], [])
    for start in range(0, len(singles), PAIRED_BLOCK):
        block = singles[start : start + PAIRED_BLOCK]
        for search, out in ((first, times[0]), (second, times[1])):
            for q in block[:PAIRED_WARMUP]:
                search(q)
            for q in block:
                started = time.perf_counter()
                search(q)
                out.append((time.perf_counter() - started) * 1e3)
    return times


def single_stats(times: list[float]) -> dict[str, float]:
    """p50, p95 and mean of single-query times (ms), under `latency`'s keys."""
    return {
        "single_p50_ms": statistics.median(times),
        "single_p95_ms": float(np.percentile(times, 95)),
        "single_mean_ms": statistics.fmean(times),
    }


def _tile(queries: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(queries))
    return np.ascontiguousarray(np.tile(queries, (reps, 1))[:n])


def searcher_latency(
    searcher: Searcher, queries: np.ndarray, k: int, knobs: SearchKnobs, **kw: Any
) -> dict[str, float]:
    """`latency` for a ScaNN pybind searcher with query-time `knobs`
    (`IndexConfig.search_kwargs`); batches use its multi-threaded batched search."""
    return latency(
        lambda q: searcher.search(q, final_num_neighbors=k, **knobs),
        lambda b: searcher.search_batched_parallel(b, final_num_neighbors=k, **knobs),
        queries,
        **kw,
    )


def held_out_pairs(
    users: np.ndarray, items: np.ndarray, identifiers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps test (user, item) pairs to (distinct users, user row per pair, item row per pair).

    Pairs whose item is not in the catalogue are dropped (they cannot be retrieved).
    """
    row_of = {str(ident): row for row, ident in enumerate(identifiers)}
    keep = np.asarray([str(i) in row_of for i in items], dtype=bool)
    users, items = np.asarray(users)[keep].astype(str), np.asarray(items)[keep]
    distinct, query_rows = np.unique(users, return_inverse=True)
    item_rows = np.asarray([row_of[str(i)] for i in items], dtype=np.int64)
    return distinct.astype(object), query_rows, item_rows
