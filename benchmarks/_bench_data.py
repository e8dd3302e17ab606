"""The benchmark's data: a clustered catalogue, its index tuned and exported.

Brute-force truth, recall and the tuning sweep are the exporter's own
(`scann_serving.export.evaluation`), so the benchmark measures what `scann-export` builds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scann_serving.export import IndexConfig, default_config
from scann_serving.export.evaluation import Searcher, TuningResult, build_pybind_searcher, sweep

K = 10
MAX_K = 100


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


def tune(
    items: np.ndarray, queries: np.ndarray, truth: np.ndarray, target: float
) -> tuple[IndexConfig, Searcher, TuningResult | None]:
    """The default index for the catalogue, its knobs tuned as `scann-export --target-recall`
    tunes them (the fastest setting reaching `target` recall@K against `truth`).

    Returns:
        (the tuned config, the pybind searcher, the sweep); no sweep for a brute-force
        index (a catalogue of at most `BRUTE_FORCE_MAX_CANDIDATES`), which is exact.
    """
    config = default_config(len(items), k=K, max_k=MAX_K)
    log(f"building pybind ScaNN index {config}")
    searcher = build_pybind_searcher(items, config, K)
    if config.brute_force:
        log("the index is brute force (exact): nothing to tune")
        return config, searcher, None
    result = sweep(
        searcher,
        config,
        queries,
        truth,
        k=K,
        max_k=MAX_K,
        num_candidates=len(items),
        target_recall=target,
        progress=log,
    )
    if not result.reached:
        raise SystemExit(
            f"--target-recall {target}: no setting of the sweep reaches it (best "
            f"{result.chosen.recall:.3f}); lower --target-recall"
        )
    log(f"  chosen: {result.chosen}")
    return result.config, searcher, result


def publish(base: Path, items: np.ndarray, queries: np.ndarray, config: IndexConfig) -> Path:
    """Exports the catalogue as a real SavedModel version under `base`; returns its dir."""
    from scann_serving.export.testing import TinyModelSpec, make_tiny_version

    spec = TinyModelSpec(1, 1, items.shape[1], 0)
    spec.users = np.asarray([str(i) for i in range(len(queries))], dtype=object)
    spec.user_embeddings = queries
    spec.identifiers = np.asarray([f"item_{i}" for i in range(len(items))], dtype=object)
    spec.item_embeddings = items
    log(f"exporting the SavedModel version (TF ScaNN index, {len(items)} candidates)")
    return make_tiny_version(
        base, model_name="retrieval", spec=spec, k=K, max_k=MAX_K, index_config=config
    )
