"""Measuring a ScaNN index the way `scann-export` does: for benchmarks and notebooks.

The export's own measuring code, importable without reaching into private modules:
exact top-k by brute force, recall@k against it, the in-process (pybind) searcher, and
the `--target-recall` sweep with its choice of query-time knobs. Nothing here imports
TensorFlow at import time; building a searcher imports ScaNN.

    from scann_serving.export import default_config
    from scann_serving.export.evaluation import build_pybind_searcher, exact_top_k, sweep

    truth = exact_top_k(queries, items, 10)
    config = default_config(len(items), k=10)
    searcher = build_pybind_searcher(items, config, 10)
    tuned = sweep(searcher, config, queries, truth, k=10, max_k=100,
                  num_candidates=len(items), target_recall=0.95).config
"""

from __future__ import annotations

from scann_serving.export._evaluation import exact_top_k, recall_at_k, scann_top_k
from scann_serving.export._index import build_pybind_searcher
from scann_serving.export._tuning import SweepPoint, TuningResult, sweep
from scann_serving.export._types import Searcher, SearchKnobs

__all__ = [
    "SearchKnobs",
    "Searcher",
    "SweepPoint",
    "TuningResult",
    "build_pybind_searcher",
    "exact_top_k",
    "recall_at_k",
    "scann_top_k",
    "sweep",
]
