"""`--target-recall`: sweep the query-time knobs, pick the fastest setting that reaches R.

The tree and the codebooks are trained once; `num_leaves_to_search` and
`num_reordering_candidates` are query-time parameters of a ScaNN searcher, so the sweep
searches one pybind index with each grid point, measuring recall@k against exact brute force
on held-out queries and the median single-query latency. The whole sweep goes into the
manifest and is drawn as a recall-latency PNG.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._evaluation import recall_at_k, scann_top_k, single_query_ms
from scann_serving.export._index import IndexConfig
from scann_serving.export._types import Progress, Searcher, SearchKnobs

LEAF_FRACTIONS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)
REORDER_MULTIPLES = (1, 2, 4, 10)
PLOT_FILENAME = "scann_tuning.png"


@dataclass(frozen=True)
class SweepPoint:
    """One measured grid point."""

    num_leaves_to_search: int
    num_reordering_candidates: int
    recall: float
    single_p50_ms: float


@dataclass(frozen=True)
class TuningResult:
    """The sweep and its outcome.

    Attributes:
        config: The chosen index config (the fastest point reaching the target, else the
            point with the best recall).
        reached: Whether any point reached the target recall.
        points: Every measured grid point.
    """

    config: IndexConfig
    target_recall: float
    k: int
    reached: bool
    chosen: SweepPoint
    points: tuple[SweepPoint, ...]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `tuning` block."""
        return {
            "target_recall": self.target_recall,
            "k": self.k,
            "reached": self.reached,
            "chosen": asdict(self.chosen),
            "sweep": [asdict(p) for p in self.points],
        }


def grid(config: IndexConfig, max_k: int, num_candidates: int) -> list[tuple[int, int]]:
    """(num_leaves_to_search, num_reordering_candidates) pairs to measure, cheapest first."""
    leaves = sorted(
        {max(1, min(config.num_leaves, round(config.num_leaves * f))) for f in LEAF_FRACTIONS}
    )
    base = max(max_k, 1)
    reorders = sorted({min(num_candidates, base * m) for m in REORDER_MULTIPLES})
    return [(leaf, reorder) for reorder in reorders for leaf in leaves]


def sweep(
    searcher: Searcher,
    config: IndexConfig,
    queries: np.ndarray,
    exact: np.ndarray,
    *,
    k: int,
    max_k: int,
    num_candidates: int,
    target_recall: float,
    latency_queries: int = 100,
    progress: Progress = print,
) -> TuningResult:
    """Measures every grid point on `searcher` (a pybind searcher built with `config`).

    Args:
        queries: Held-out query embeddings, float32 `[q, dim]`.
        exact: Their exact top-k candidate rows, `[q, >=k]`.
    """
    if config.brute_force:
        raise ValueError("--target-recall tunes a tree index; brute force is already exact")
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"--target-recall {target_recall} must be in (0, 1], e.g. 0.95")
    points = []
    pairs = grid(config, max_k, num_candidates)
    progress(f"tuning: {len(pairs)} settings, recall@{k} on {len(queries)} held-out queries")
    for i, (leaves, reorder) in enumerate(pairs, 1):
        knobs = config.with_search(leaves, reorder).search_kwargs(k)
        found = scann_top_k(searcher, queries, k, knobs)
        times = single_query_ms(_searcher_call(searcher, k, knobs), queries, latency_queries)
        point = SweepPoint(leaves, reorder, recall_at_k(found, exact, k), statistics.median(times))
        points.append(point)
        progress(
            f"  [{i}/{len(pairs)}] leaves {leaves:>5} reorder {reorder:>5}: "
            f"recall {point.recall:.3f}  {point.single_p50_ms:.3f} ms"
        )
    return _choose(config, points, target_recall, k)


def _searcher_call(searcher: Searcher, k: int, knobs: SearchKnobs) -> Callable[[np.ndarray], Any]:
    def search_one(query: np.ndarray) -> Any:
        return searcher.search(query, final_num_neighbors=k, **knobs)

    return search_one


def _choose(config: IndexConfig, points: list[SweepPoint], target: float, k: int) -> TuningResult:
    good = [p for p in points if p.recall >= target]
    reached = bool(good)
    if good:
        chosen = min(good, key=lambda p: (p.single_p50_ms, -p.recall))
    else:
        chosen = max(points, key=lambda p: (p.recall, -p.single_p50_ms))
    tuned = config.with_search(chosen.num_leaves_to_search, chosen.num_reordering_candidates)
    return TuningResult(tuned, target, k, reached, chosen, tuple(points))


def plot(result: TuningResult, path: Path, *, brute_force_ms: float | None = None) -> Path:
    """Draws recall@k against single-query latency for the sweep (one line per reorder size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for reorder in sorted({p.num_reordering_candidates for p in result.points}):
        line = sorted(
            (p for p in result.points if p.num_reordering_candidates == reorder),
            key=lambda p: p.num_leaves_to_search,
        )
        ax.plot(
            [p.single_p50_ms for p in line],
            [p.recall for p in line],
            marker="o",
            ms=3,
            label=f"reorder {reorder}",
        )
    ax.axhline(
        result.target_recall, color="grey", ls="--", lw=1, label=f"target {result.target_recall}"
    )
    if brute_force_ms is not None:
        ax.axvline(
            brute_force_ms,
            color="black",
            ls=":",
            lw=1,
            label=f"brute force {brute_force_ms:.2f} ms",
        )
    c = result.chosen
    ax.plot(
        [c.single_p50_ms],
        [c.recall],
        marker="*",
        ms=14,
        color="red",
        ls="none",
        label=f"chosen: leaves {c.num_leaves_to_search}, reorder {c.num_reordering_candidates}",
    )
    ax.set_ylabel(f"recall@{result.k} vs brute force")
    ax.set_title("ScaNN search knobs: recall vs latency")
    return save_latency_plot(fig, ax, path)


def save_latency_plot(fig: Any, ax: Any, path: Path) -> Path:
    """The common end of the recall-vs-latency plots (this sweep's and the bands'): a log
    latency axis, grid, legend; written as a PNG at `path` and closed."""
    import matplotlib.pyplot as plt

    ax.set_xscale("log")
    ax.set_xlabel("single-query latency, p50 (ms, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
