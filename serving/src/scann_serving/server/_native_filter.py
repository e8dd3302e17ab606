"""`retrieve_filtered` natively: the exported graph's filtered search in numpy over ScaNN's pybind.

The SavedModel's graph (`export._filtering.CandidateFilter` with `_module`'s deep search)
is the specification; this is its twin, step for step, so both answer a request with the
same identifiers (the export verifies it before it publishes):

1. per query, the passing set, exactly (`_attribute_files.AttributeIndex.passing`);
2. queries with at most `max(exact_max_passing, k)` passing are scored exactly;
3. the others share one ScaNN search of `OVERFETCH` x k / (largest passing share) results,
   with leaves and reordering grown with the depth from the search band of the requested k
   (`deep_search_knobs`), keeping the
   passing results in rank order; if any of them keeps fewer than k, the whole batch is
   searched once more `WIDEN ** MAX_ROUNDS` times deeper, and queries still short are
   scored exactly;
4. the best k by a stable sort (how `tf.math.top_k` breaks ties: lower position first),
   padded with identifier b"" and score -inf.

The constants live here, below both: the graph imports them, so the two cannot drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scann_serving.server._attribute_files import AttributeIndex

#: Over-fetch factor: fetch this many times k / (fraction of candidates passing).
OVERFETCH = 2.0
#: Each widening multiplies the fetch by this.
WIDEN = 4
#: Widenings before scoring the passing candidates exactly.
MAX_ROUNDS = 3
#: An over-fetch of depth d searches (d / k) ** LEAVES_EXPONENT x the tuned leaves.
LEAVES_EXPONENT = 0.75
#: Passing candidates at or below `max(EXACT_MIN_PASSING, EXACT_SQRT_FACTOR * sqrt(n))` are
#: scored exactly. Exact scoring costs about the passing count, over-fetching about
#: n / passing, so they cross near sqrt(n): measured between 1,000 and 10,000 passing at
#: 100k candidates and between 10,000 and 100,000 at 1M (README, bench_filtering.py).
EXACT_MIN_PASSING = 2_000
EXACT_SQRT_FACTOR = 16.0

#: depth -> ScaNN's (rows int64, scores float32) `[batch, <= depth]` for the request's batch.
DeepSearch = Callable[[int], tuple[np.ndarray, np.ndarray]]


def exact_max_passing(num_candidates: int) -> int:
    """The switch point between over-fetching ScaNN and scoring the passing set exactly."""
    return max(EXACT_MIN_PASSING, int(EXACT_SQRT_FACTOR * math.sqrt(num_candidates)))


@dataclass(frozen=True)
class FilterSettings:
    """What the graph bakes in besides the search knobs.

    Attributes:
        exact_max_passing: Passing candidates at or below which they are scored exactly.
        num_leaves: The index's tree partitions, 0 for brute force (no leaves to widen).
    """

    exact_max_passing: int
    num_leaves: int


def deep_search_knobs(
    depth: int, *, k: int, leaves_to_search: int, reordering: int, num_leaves: int, n: int
) -> tuple[int, int]:
    """(pre_reorder, leaves) of the graph's `_deep_search` for `depth` results.

    `k`, `leaves_to_search` and `reordering` are the search band of the requested k (its
    `up_to_k` and knobs): the band's leaves hold about `up_to_k` neighbours; `depth` of
    them spread over more, so the leaves grow as `(depth / k) ** LEAVES_EXPONENT` and the
    reordering budget per result is kept. Same float64 arithmetic as the graph.
    """
    if num_leaves == 0:
        return (max(depth, reordering) if reordering > 0 else -1), leaves_to_search
    ratio = max(1.0, float(depth) / float(k))
    leaves = min(math.ceil(float(leaves_to_search) * ratio**LEAVES_EXPONENT), num_leaves)
    reorder = min(math.ceil(float(reordering) * ratio), n)
    return (max(depth, reorder) if reordering > 0 else -1), leaves


class FilteredSearch:
    """The filtered search of one version.

    Args:
        attributes: The candidates' attributes, row-aligned with the index.
        embeddings: float32 `[n, dim]`, the candidate embeddings (the exact path scores them).
        settings: The graph's switch point and the index's leaves.
    """

    def __init__(
        self, attributes: AttributeIndex, embeddings: np.ndarray, settings: FilterSettings
    ) -> None:
        if attributes.num_candidates != len(embeddings):
            raise ValueError(
                f"{attributes.num_candidates} attribute rows for {len(embeddings)} candidates"
            )
        self.attributes = attributes
        self.embeddings = np.ascontiguousarray(embeddings, np.float32)
        self.settings = settings

    def masks(self, allow: np.ndarray, deny: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """bool `[batch, n]`: which candidates pass each query's filter."""
        rows = [
            self.attributes.passing(a, d, m)
            for a, d, m in zip(allow.tolist(), deny.tolist(), numeric.tolist(), strict=True)
        ]
        return np.stack(rows) if rows else np.zeros((0, self.attributes.num_candidates), bool)

    def search(
        self, embeddings: np.ndarray, k: int, mask: np.ndarray, search: DeepSearch
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows (int64 `[batch, k]`, -1 for padding) and scores (float32, -inf for padding).

        Args:
            embeddings: float32 `[batch, dim]` query embeddings.
            k: Results per query.
            mask: bool `[batch, n]` from `masks`.
            search: depth -> ScaNN's (rows, scores) for the batch at that depth, searched
                with `deep_search_knobs`.
        """
        batch, n = mask.shape
        passing = mask.sum(axis=1)
        exact = passing <= max(self.settings.exact_max_passing, k)
        kept = np.zeros(batch, np.int64)
        rows = np.zeros((batch, 0), np.int64)
        scores = np.zeros((batch, 0), np.float32)
        if not exact.all():
            share = passing.astype(np.float64) / float(n)
            wanted = OVERFETCH * float(k) / np.maximum(share, 1e-12)
            first = int(min(max(math.ceil(np.where(exact, 0.0, wanted).max()), k), n))
            rows, scores, kept = _keep_passing(*search(first), mask)
            if (~exact & (kept < k)).any():
                # The filter removed some query's neighbourhood: widen once, all the way.
                rows, scores, kept = _keep_passing(*search(min(first * WIDEN**MAX_ROUNDS, n)), mask)
        rows, scores = best(rows, scores, k)
        for q in np.flatnonzero(exact | (kept < k)):
            rows[q], scores[q] = self._exact(embeddings[q], k, mask[q])
        return rows, scores

    def _exact(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The best k passing candidates of one query by exact dot product."""
        candidates = np.flatnonzero(mask)
        values = (self.embeddings[candidates] * np.asarray(query, np.float32)).sum(
            axis=1, dtype=np.float32
        )
        rows, scores = best(candidates[None, :].astype(np.int64), values[None, :], k)
        return rows[0], scores[0]


def _keep_passing(
    rows: np.ndarray, scores: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ScaNN's results with the failing ones (and its -inf/NaN padding) set to -inf."""
    n = mask.shape[1]
    keep = (rows >= 0) & (rows < n) & np.isfinite(scores)
    keep &= np.take_along_axis(mask, np.clip(rows, 0, n - 1), axis=1)
    scores = np.where(keep, scores, np.float32(-np.inf)).astype(np.float32)
    return rows, scores, keep.sum(axis=1)


def best(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (row, score) per query, best first; -inf entries become (-1, -inf), and
    rows with fewer than k columns are padded so (the graph's `_best`)."""
    pad = max(k - scores.shape[1], 0)
    scores = np.pad(scores, [(0, 0), (0, pad)], constant_values=-np.inf)
    rows = np.pad(rows, [(0, 0), (0, pad)], constant_values=-1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    chosen = np.take_along_axis(rows, order, axis=1)
    return np.where(np.isinf(top), -1, chosen).astype(np.int64), top
