"""The benchmark's data: a clustered catalogue, brute-force truth, index tuning, export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

K = 10


def log(message: str) -> None:
    """A timestamped progress line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def catalogue(
    n: int, dim: int, num_queries: int, seed: int, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clustered candidates and queries: n/1000 Gaussian clusters of unit-variance centers,
    each point a center plus `spread` x unit noise (real embeddings are clustered; at spread
    1.0 the clusters overlap heavily, so reaching recall 0.95 takes a real search)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(16, n // 1000), dim)).astype(np.float32)

    def sample(count: int) -> np.ndarray:
        noise = rng.standard_normal((count, dim)).astype(np.float32)
        return (centers[rng.integers(len(centers), size=count)] + spread * noise).astype(np.float32)

    return sample(n), sample(num_queries)


def brute_force_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids by dot product, 256 queries at a time."""
    out = []
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ items.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true neighbours found, per query."""
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def tune(
    items: np.ndarray, queries: np.ndarray, truth: np.ndarray, target: float
) -> tuple[Any, Any, list]:
    """Smallest num_leaves_to_search reaching the target recall; returns (config, searcher, sweep)."""
    from scann_serving.export._index import build_pybind_searcher, default_config

    config = default_config(len(items), k=K, max_k=100)
    log(f"building pybind ScaNN index {config}")
    searcher = build_pybind_searcher(items, config, K)
    sweep = []
    for fraction in (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5):
        leaves = max(1, round(config.num_leaves * fraction))
        found, _ = searcher.search_batched_parallel(
            queries,
            leaves_to_search=leaves,
            pre_reorder_num_neighbors=config.num_reordering_candidates,
        )
        r = recall(np.asarray(found), truth)
        sweep.append({"num_leaves_to_search": leaves, "recall_at_10": r})
        log(f"  leaves_to_search={leaves:5d} recall@10={r:.4f}")
        if r >= target:
            tuned = config.with_search(leaves, config.num_reordering_candidates)
            return tuned, searcher, sweep
    raise SystemExit(f"no setting reached recall {target}; raise num_reordering_candidates")


def publish(base: Path, items: np.ndarray, queries: np.ndarray, config: Any) -> Path:
    """Exports the catalogue as a real SavedModel version under `base`; returns its dir."""
    from scann_serving.export.testing import TinyModelSpec, make_tiny_version

    spec = TinyModelSpec(1, 1, items.shape[1], 0)
    spec.users = np.asarray([str(i) for i in range(len(queries))], dtype=object)
    spec.user_embeddings = queries
    spec.identifiers = np.asarray([f"item_{i}" for i in range(len(items))], dtype=object)
    spec.item_embeddings = items
    log(f"exporting the SavedModel version (TF ScaNN index, {len(items)} candidates)")
    return make_tiny_version(
        base, model_name="retrieval", spec=spec, k=K, max_k=100, index_config=config
    )
