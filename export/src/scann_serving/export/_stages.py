"""The steps of `export_model`, each a function of the config and the previous steps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import ATTRIBUTES_DIRNAME, ATTRIBUTES_MANIFEST_KEY
from scann_serving.export._attributes import AttributeTable
from scann_serving.export._config import ExportConfig
from scann_serving.export._data import Interactions
from scann_serving.export._evaluation import (
    TOP_K_LEVELS,
    exact_top_k,
    factorized_top_k,
    recall_at_k,
    scann_top_k,
    searcher_latency,
)
from scann_serving.export._index import (
    IndexConfig,
    build_pybind_searcher,
    build_tf_searcher,
    pybind_twin,
)
from scann_serving.export._manifest import ASSETS_EXTRA, build_manifest, fingerprint
from scann_serving.export._towers import Towers
from scann_serving.export._tuning import PLOT_FILENAME, TuningResult, plot, sweep
from scann_serving.export._types import Catalogue, ExportedSearcher, Progress, Queries, Searcher

TOP_K_DEPTH = 100


def towers(config: ExportConfig, data: Interactions | None, progress: Progress) -> Towers:
    """Loads the user's towers, or trains the built-in two-tower model on `data`."""
    if config.own_towers is not None:
        from scann_serving.export._own_towers import load_own_towers

        progress(f"loading the query tower {config.own_towers.query_model}")
        return load_own_towers(config.own_towers, progress)
    from scann_serving.export._towers import train_two_tower

    assert data is not None  # ExportConfig.validate guarantees a dataset here
    return train_two_tower(data, config.training, progress)


@dataclass
class Measured:
    """The final index config, its tuning sweep, evaluation and the exported searcher."""

    index_config: IndexConfig
    tuning: TuningResult | None
    evaluation: dict[str, Any]
    tf_searcher: ExportedSearcher
    twin: Searcher


def measure(
    config: ExportConfig,
    index_config: IndexConfig,
    catalogue: Catalogue,
    queries: Queries,
    progress: Progress,
) -> Measured:
    """Builds the exported index once, tunes its query-time knobs (`--target-recall`) and
    evaluates it against brute force, through an in-process twin of the same index."""
    n = len(catalogue.embeddings)
    depth = min(max(TOP_K_DEPTH, config.k), n)
    progress(f"exact top-{depth} by brute force for {len(queries.embeddings):,} held-out queries")
    exact = exact_top_k(queries.embeddings, catalogue.embeddings, depth)
    tf_searcher = _timed_build(catalogue, index_config, config.k, progress)
    searcher = pybind_twin(tf_searcher, catalogue.embeddings, index_config, config.k)
    tuning = tune(config, index_config, searcher, queries, exact, catalogue.embeddings, progress)
    index_config = tuning.config if tuning is not None else index_config
    evaluation = evaluate(config, index_config, searcher, catalogue, queries, exact, progress)
    # Cross-check through the TensorFlow op the SavedModel calls, with the same knobs.
    eval_q = queries.embeddings[: config.eval_queries]
    found, _ = tf_searcher.search_batched(eval_q, config.k, **index_config.search_kwargs(config.k))
    evaluation["recall_at_k_exported_index"] = recall_at_k(
        np.asarray(found), exact[: len(eval_q)], config.k
    )
    return Measured(index_config, tuning, evaluation, tf_searcher, searcher)


def tune(
    config: ExportConfig,
    index_config: IndexConfig,
    searcher: Searcher,
    queries: Queries,
    exact: np.ndarray,
    searcher_rows: np.ndarray,
    progress: Progress,
) -> TuningResult | None:
    """Runs the `--target-recall` sweep on the in-process twin (None when not asked for or
    when the index is exact brute force)."""
    if config.target_recall is None:
        return None
    if index_config.brute_force:
        progress("--target-recall: the index is brute force (exact), nothing to tune")
        return None
    eval_n = min(config.eval_queries, len(queries.embeddings))
    tuning = sweep(
        searcher,
        index_config,
        queries.embeddings[:eval_n],
        exact[:eval_n],
        k=config.k,
        max_k=config.max_k,
        num_candidates=len(searcher_rows),
        target_recall=config.target_recall,
        progress=progress,
    )
    state = "reached" if tuning.reached else "NOT reached, best recall kept"
    progress(f"  chosen: {_describe(tuning.config)} (target {state})")
    return tuning


def _timed_build(
    catalogue: Catalogue, cfg: IndexConfig, k: int, progress: Progress
) -> ExportedSearcher:
    size = len(catalogue.embeddings)
    progress(f"building the ScaNN index over {size:,} candidates: {_describe(cfg)}")
    started = time.perf_counter()
    searcher = build_tf_searcher(catalogue.embeddings, cfg, k)
    progress(f"  built in {time.perf_counter() - started:.1f}s")
    return searcher


def _describe(cfg: IndexConfig) -> str:
    if cfg.brute_force:
        return "brute force"
    return (
        f"tree {cfg.num_leaves} leaves, search {cfg.num_leaves_to_search}, "
        f"AH {cfg.dimensions_per_block} dims/block, reorder {cfg.num_reordering_candidates}"
    )


def evaluate(
    config: ExportConfig,
    index_config: IndexConfig,
    searcher: Searcher,
    catalogue: Catalogue,
    queries: Queries,
    exact: np.ndarray,
    progress: Progress,
) -> dict[str, Any]:
    """Top-k accuracy (brute force and ScaNN), recall@k vs brute force, latency of both."""
    k, depth, n = config.k, exact.shape[1], len(catalogue.embeddings)
    progress("evaluating: factorized top-k accuracy, recall, latency")
    scann_top = scann_top_k(searcher, queries.embeddings, depth, index_config.search_kwargs(depth))
    eval_q = queries.embeddings[: config.eval_queries]
    at_k = scann_top_k(searcher, eval_q, k, index_config.search_kwargs(k))
    out: dict[str, Any] = {
        "k": k,
        "queries": len(eval_q),
        "recall_at_k": recall_at_k(at_k, exact[: len(eval_q)], k),
    }
    if queries.pair_rows is not None and queries.pair_items is not None and len(queries.pair_rows):
        out["test_pairs"] = len(queries.pair_rows)
        out["factorized_top_k"] = {
            "brute_force": factorized_top_k(exact, queries.pair_rows, queries.pair_items),
            "scann": factorized_top_k(scann_top, queries.pair_rows, queries.pair_items),
            # What a random ranking scores: the bar training must clear.
            "chance": {f"top_{lv}": min(1.0, lv / n) for lv in TOP_K_LEVELS if lv <= depth},
        }
    reorder = min(TOP_K_DEPTH, len(catalogue.embeddings))
    brute_config = IndexConfig(num_reordering_candidates=reorder)
    brute = build_pybind_searcher(catalogue.embeddings, brute_config, k)
    lat_q = config.latency_queries
    bf = searcher_latency(brute, eval_q, k, brute_config.search_kwargs(k), single_queries=lat_q)
    sc = searcher_latency(searcher, eval_q, k, index_config.search_kwargs(k), single_queries=lat_q)
    out["latency"] = {
        "brute_force": bf,
        "scann": sc,
        "speedup_single_p50": bf["single_p50_ms"] / sc["single_p50_ms"],
        "speedup_batch": bf["batch_ms"] / sc["batch_ms"],
    }
    return out


@dataclass
class Published:
    """A published version: its directory, manifest and tuning plot."""

    directory: Path
    manifest: dict[str, Any]
    plot: Path | None


def publish_version(
    config: ExportConfig,
    data: Interactions | None,
    towers: Towers,
    catalogue: Catalogue,
    queries: Queries,
    measured: Measured,
    progress: Progress,
) -> Published:
    """Saves the module, writes warmup + manifest (+ plot), verifies, renames into place."""
    from scann_serving.export._module import RetrievalModule
    from scann_serving.export._publish import publish
    from scann_serving.export._savedmodel import save_module, signature_summary, warmup_requests
    from scann_serving.export._verify import verify_in_fresh_process

    max_k = min(config.max_k, len(catalogue.identifiers))
    module = RetrievalModule(
        query_model=towers.query_model,
        identifiers=catalogue.identifiers,
        searcher=measured.tf_searcher,
        index_config=measured.index_config,
        embedding_dim=towers.embedding_dim,
        k=config.k,
        max_k=max_k,
        query_dtype=towers.query_key.dtype,
        attributes=catalogue.attributes,
        embeddings=catalogue.embeddings if catalogue.attributes is not None else None,
    )
    warmup = warmup_requests(
        config.model_name,
        towers.query_key.parse(queries.keys[:8].tolist(), "warmup query keys"),
        queries.embeddings[:8],
        k=config.k,
        max_k=max_k,
        query_dtype=towers.query_key.dtype,
        attributes=catalogue.attributes,
    )
    manifest = _manifest(
        config, data, towers, catalogue, measured, signature_summary(module), max_k
    )
    plot_rel = f"{ASSETS_EXTRA}/{PLOT_FILENAME}" if measured.tuning else None

    def write(staging: Path) -> None:
        progress("saving the SavedModel")
        save_module(module, staging)
        if catalogue.attributes is not None:
            catalogue.attributes.save(staging / ASSETS_EXTRA / ATTRIBUTES_DIRNAME)
        if config.native_bundle:
            manifest["native"] = _native_bundle(staging, towers, catalogue, measured, config, max_k)
            progress(
                f"  native bundle: {manifest['native']['bytes'] / 2**20:,.1f} MiB "
                f"(SavedModel {manifest['native']['savedmodel_bytes'] / 2**20:,.1f} MiB), "
                f"serves {', '.join(manifest['native']['signatures'])}"
            )
        if measured.tuning is not None and plot_rel:
            bf_ms = measured.evaluation["latency"]["brute_force"]["single_p50_ms"]
            plot(measured.tuning, staging / plot_rel, brute_force_ms=bf_ms)

    def check(staging: Path) -> None:
        progress(
            "verifying in a fresh process: load with the ScaNN ops, replay the warmup requests"
            + (", compare the native bundle" if config.native_bundle else "")
        )
        probe = (queries.keys, queries.embeddings) if config.native_bundle else None
        manifest["verification"] = verify_in_fresh_process(
            staging, lambda sig, inputs: getattr(module, sig)(**inputs), native_probe=probe
        )

    directory = publish(
        config.output,
        write,
        version=config.version,
        manifest=manifest,
        warmup_requests=warmup,
        check=check if config.verify else None,
    )
    return Published(directory, manifest, directory / plot_rel if plot_rel else None)


def _native_bundle(
    staging: Path,
    towers: Towers,
    catalogue: Catalogue,
    measured: Measured,
    config: ExportConfig,
    max_k: int,
) -> dict[str, Any]:
    from scann_serving.export._native import (
        filter_settings,
        search_settings,
        tower_table,
        write_native_bundle,
    )

    n = len(catalogue.identifiers)
    tower = tower_table(towers)
    block = write_native_bundle(
        staging,
        twin=measured.twin,
        identifiers=catalogue.identifiers,
        settings=search_settings(measured.index_config, config.k, max_k),
        towers=towers,
        table=tower.table,
        filtered=(filter_settings(measured.index_config, n), catalogue.embeddings)
        if catalogue.attributes is not None
        else None,
    )
    block["tower_reason"] = tower.reason
    return block


def _manifest(
    config: ExportConfig,
    data: Interactions | None,
    towers: Towers,
    catalogue: Catalogue,
    measured: Measured,
    signatures: dict[str, Any],
    max_k: int,
) -> dict[str, Any]:
    dataset = (
        data.summary()
        if data is not None
        else {
            "name": "own-candidates",
            "fingerprint": fingerprint(
                [towers.embeddings.tobytes(), "\x1f".join(map(str, towers.identifiers)).encode()]
            ),
        }
    )
    tuning: dict[str, Any] = {}
    if measured.tuning is not None:
        tuning = {**measured.tuning.to_dict(), "plot": f"{ASSETS_EXTRA}/{PLOT_FILENAME}"}
    elif config.target_recall is not None:
        tuning = {"target_recall": config.target_recall, "skipped": "brute-force index is exact"}
    manifest = build_manifest(
        model_name=config.model_name,
        k=config.k,
        max_k=max_k,
        num_candidates=len(catalogue.identifiers),
        embedding_dim=towers.embedding_dim,
        index=measured.index_config.to_dict(),
        signatures=signatures,
        dataset=dataset,
        evaluation=measured.evaluation,
        tuning=tuning,
        training=towers.training,
    )
    manifest["query_key"] = towers.query_key.to_dict()
    manifest["catalogue"] = {
        "original_candidates": catalogue.original_size,
        "augment_copies": config.augment_candidates,
    }
    if catalogue.attributes is not None:
        manifest[ATTRIBUTES_MANIFEST_KEY] = attributes_block(catalogue.attributes)
    return manifest


def attributes_block(table: AttributeTable) -> dict[str, Any]:
    """The manifest's `attributes` block: the schema, where the plain layout is, and how
    `retrieve_filtered` switches between over-fetching and exact scoring."""
    from scann_serving.export._filtering import exact_max_passing

    return {
        **table.schema(),
        "layout": f"{ASSETS_EXTRA}/{ATTRIBUTES_DIRNAME}",
        "exact_max_passing": exact_max_passing(table.num_candidates),
    }
