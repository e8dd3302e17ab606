"""The steps of `export_model`, each a function of the config and the previous steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scann_serving.client.contract import ATTRIBUTES_DIRNAME, ATTRIBUTES_MANIFEST_KEY
from scann_serving.export._attributes import AttributeTable
from scann_serving.export._config import ExportConfig
from scann_serving.export._data import Interactions
from scann_serving.export._manifest import ASSETS_EXTRA, build_manifest, fingerprint
from scann_serving.export._measure import Measured, measure
from scann_serving.export._plot import plot_bands
from scann_serving.export._towers import Towers
from scann_serving.export._tuning import PLOT_FILENAME
from scann_serving.export._types import Catalogue, Progress, Queries

__all__ = ["Measured", "Published", "attributes_block", "measure", "publish_version", "towers"]


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
        search_bands=measured.bands,
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
            plot_bands(measured.tuning, measured.band_report, staging / plot_rel)

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
        settings=search_settings(measured.index_config, config.k, max_k, measured.bands),
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
    elif not measured.index_config.brute_force:
        tuning = {"skipped": "search knobs given explicitly"}
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
    manifest["search_bands"] = measured.band_report
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
