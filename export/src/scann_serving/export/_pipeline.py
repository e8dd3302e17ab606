"""`export_model(config)`: data -> towers -> index (tuned) -> evaluation -> verified version.

The Python API behind `scann-export`. Each step reports progress through a callable
(stderr by default); the result carries the published directory and the manifest.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scann_serving.export._config import ExportConfig
from scann_serving.export._data import Interactions
from scann_serving.export._evaluation import held_out_pairs
from scann_serving.export._publish import VersionExistsError
from scann_serving.export._sources import load_dataset
from scann_serving.export._types import Catalogue, Progress, Queries

if TYPE_CHECKING:
    from scann_serving.export._attributes import AttributeTable
    from scann_serving.export._towers import Towers

WARMUP_QUERIES = 8


@dataclass
class ExportResult:
    """What an export wrote and measured.

    Attributes:
        version_dir: The published `<output>/<version>` directory.
        version: Its integer version.
        manifest: The manifest as written to `assets.extra/scann_manifest.json`.
        plot: The recall-latency PNG (with `target_recall`), else None.
        seconds: Wall time of the export.
    """

    version_dir: Path
    version: int
    manifest: dict[str, Any]
    plot: Path | None
    seconds: float


def stderr_progress() -> Progress:
    """A progress printer to stderr prefixed with the elapsed time."""
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    return progress


def export_model(config: ExportConfig, progress: Progress | None = None) -> ExportResult:
    """Trains (or loads) the towers, builds, tunes and evaluates the index, then publishes
    and verifies a new version under `config.output`.

    Raises:
        DataError: A dataset or tower input is unusable (the message says what to do).
        ValueError: An option is out of range.
        VersionExistsError: `config.version` already exists.
        VerificationError: The version does not reload identically in a fresh process.
    """
    config.validate()
    if config.version is not None and (config.output / str(config.version)).exists():
        raise VersionExistsError(
            f"{config.output / str(config.version)} exists; versions are never overwritten. "
            "Omit --version to publish the next one."
        )
    progress = progress or stderr_progress()
    started = time.perf_counter()
    data = load_data(config, progress)  # before TensorFlow is imported: bad input fails fast
    # The steps import TensorFlow; importing them here keeps `import scann_serving.export`
    # and `scann-export --help` free of it.
    from scann_serving.export import _stages

    towers = _stages.towers(config, data, progress)
    catalogue = augment(towers, config.augment_candidates, config.seed, progress)
    catalogue.attributes = attribute_table(config, data, towers.identifiers, progress)
    if catalogue.attributes is not None and config.augment_candidates:
        catalogue.attributes = catalogue.attributes.tile(config.augment_candidates)
    queries = held_out_queries(config, data, towers, catalogue)
    index_config = config.index.resolve(len(catalogue.embeddings), k=config.k, max_k=config.max_k)
    measured = _stages.measure(config, index_config, catalogue, queries, progress)
    published = _stages.publish_version(
        config, data, towers, catalogue, queries, measured, progress
    )
    return ExportResult(
        version_dir=published.directory,
        version=int(published.manifest["version"]),
        manifest=published.manifest,
        plot=published.plot,
        seconds=time.perf_counter() - started,
    )


def load_data(config: ExportConfig, progress: Progress) -> Interactions | None:
    """The `--dataset`, or None when the user brings towers without one."""
    if config.dataset is None:
        return None
    progress(f"loading --dataset {config.dataset}")
    data = load_dataset(config.dataset, config.data)
    progress(
        f"  {len(data.train_users):,} train / {len(data.test_users):,} test interactions, "
        f"{len(data.users):,} users, {len(data.items):,} items"
    )
    return data


def attribute_table(
    config: ExportConfig,
    data: Interactions | None,
    identifiers: np.ndarray,
    progress: Progress,
) -> AttributeTable | None:
    """The attributes of the (unaugmented) catalogue: `--candidate-attributes`, else the
    dataset's own, else None (then the version has no `retrieve_filtered`)."""
    if not config.attributes:
        return None
    if config.candidate_attributes is not None:
        from scann_serving.export._attribute_sources import read_attribute_file

        progress(f"reading --candidate-attributes {config.candidate_attributes}")
        source = read_attribute_file(config.candidate_attributes, config.candidate_id_column)
    elif data is not None and data.attributes is not None:
        source = data.attributes
    else:
        return None
    table = source.align(identifiers)
    schema = table.schema()
    progress(
        f"  attributes: namespaces {list(table.namespaces)}, numeric {list(table.numeric_names)}; "
        f"{schema['candidates_with_tokens']:,} of {table.num_candidates:,} candidates have tokens"
    )
    return table


def augment(towers: Towers, copies: int, seed: int, progress: Progress) -> Catalogue:
    """The catalogue plus `copies` perturbed copies (the TFRS tutorial's enlarged catalogue:
    each copy is the embeddings times uniform(0, 1) noise, with its own identifiers)."""
    ids, emb = towers.identifiers, np.ascontiguousarray(towers.embeddings, dtype=np.float32)
    if copies == 0:
        return Catalogue(ids, emb, len(ids))
    total = len(ids) * (copies + 1)
    progress(f"augmenting the catalogue: {copies:,} perturbed copies -> {total:,} candidates")
    rng = np.random.default_rng(seed)
    embeddings = np.empty((total, emb.shape[1]), np.float32)
    embeddings[: len(ids)] = emb
    names = [np.asarray(ids, dtype=object)]
    for j in range(1, copies + 1):
        rows = slice(j * len(ids), (j + 1) * len(ids))
        embeddings[rows] = emb * rng.uniform(0.0, 1.0, emb.shape).astype(np.float32)
        names.append(np.asarray([f"{i} (copy {j})" for i in ids], dtype=object))
    return Catalogue(np.concatenate(names), embeddings, len(ids))


def held_out_queries(
    config: ExportConfig, data: Interactions | None, towers: Towers, catalogue: Catalogue
) -> Queries:
    """The distinct test-split users (with their test pairs), or, without a dataset,
    a sample of candidate embeddings used as queries."""
    if data is None:
        rng = np.random.default_rng(config.seed)
        rows = rng.choice(
            len(catalogue.embeddings),
            min(config.eval_queries, len(catalogue.embeddings)),
            replace=False,
        )
        keys = towers.query_key.sample(WARMUP_QUERIES)
        return Queries(keys=keys, embeddings=catalogue.embeddings[rows])
    users, pair_rows, pair_items = held_out_pairs(
        data.test_users, data.test_items, catalogue.identifiers
    )
    if len(users) == 0:
        users, pair_rows, pair_items = data.users[:1], np.zeros(0, np.int64), np.zeros(0, np.int64)
    return Queries(users, towers.embed_queries(users), pair_rows, pair_items)
