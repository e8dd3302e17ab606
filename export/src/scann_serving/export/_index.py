"""ScaNN index configuration: one typed, validated config object and the builders for it.

`IndexConfig` is the single description of a ScaNN index (tree + asymmetric hashing +
reordering, or brute force). It is recorded in the manifest, tuned by `_tuning`, and turned
into either a TensorFlow-op searcher (what the SavedModel carries) or an in-process pybind
searcher (what benchmarks compare against) by the builders below, so both are always the
same index; `IndexConfig.search_kwargs` gives the query-time knobs every search of it passes.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.export._types import ExportedSearcher, Searcher, SearchKnobs
from scann_serving.server._native_search import SearchBand, SearchSettings

DISTANCE_MEASURE = "dot_product"
#: Catalogues at or below this size are searched exhaustively: a tree buys nothing there.
BRUTE_FORCE_MAX_CANDIDATES = 5_000
DEFAULT_DIMENSIONS_PER_BLOCK = 2
DEFAULT_ANISOTROPIC_THRESHOLD = 0.2
DEFAULT_TRAINING_SAMPLE_SIZE = 250_000
#: k-means iterations that train the tree (ScaNN's default).
DEFAULT_TRAINING_ITERATIONS = 12


@dataclass(frozen=True)
class IndexConfig:
    """The knobs of a ScaNN index, in TFRS's vocabulary.

    Attributes:
        num_leaves: Number of partitions of the tree (about sqrt(n)). 0 means brute force.
        num_leaves_to_search: Partitions searched per query (recall vs latency).
        num_reordering_candidates: Candidates re-scored exactly after hashing; bounds max k.
        dimensions_per_block: Asymmetric-hashing block size.
        anisotropic_quantization_threshold: ScaNN's anisotropic loss threshold (dot product).
        training_sample_size: Points sampled to train the tree and the codebooks.
        brute_force: Exhaustive float32 search instead of tree + hashing.
        training_iterations: k-means iterations that train the tree's partitions.
    """

    num_leaves: int = 0
    num_leaves_to_search: int = 0
    num_reordering_candidates: int = 100
    dimensions_per_block: int = DEFAULT_DIMENSIONS_PER_BLOCK
    anisotropic_quantization_threshold: float = DEFAULT_ANISOTROPIC_THRESHOLD
    training_sample_size: int = DEFAULT_TRAINING_SAMPLE_SIZE
    brute_force: bool = True
    training_iterations: int = DEFAULT_TRAINING_ITERATIONS

    def validate(self, num_candidates: int, k: int) -> None:
        """Raises `ValueError` naming the knob and the fix when the config cannot work."""
        if num_candidates < 1:
            raise ValueError("the candidate catalogue is empty; pass at least one candidate")
        if k < 1 or k > num_candidates:
            raise ValueError(f"k={k} must be between 1 and the catalogue size {num_candidates}")
        if self.brute_force:
            return
        if not 1 <= self.num_leaves <= num_candidates:
            raise ValueError(
                f"num_leaves={self.num_leaves} must be between 1 and the catalogue size "
                f"{num_candidates}; about sqrt(n)={round(math.sqrt(num_candidates))} is typical"
            )
        if not 1 <= self.num_leaves_to_search <= self.num_leaves:
            raise ValueError(
                f"num_leaves_to_search={self.num_leaves_to_search} must be between 1 and "
                f"num_leaves={self.num_leaves}"
            )
        if self.num_reordering_candidates < k:
            raise ValueError(
                f"num_reordering_candidates={self.num_reordering_candidates} must be >= k={k}; "
                "raise --num-reordering-candidates or lower k"
            )
        if self.dimensions_per_block < 1:
            raise ValueError(f"dimensions_per_block={self.dimensions_per_block} must be >= 1")
        if self.training_iterations < 1:
            raise ValueError(f"training_iterations={self.training_iterations} must be >= 1")

    def with_search(self, num_leaves_to_search: int, num_reordering_candidates: int) -> IndexConfig:
        """A copy with other query-time knobs (what tuning varies)."""
        return dataclasses.replace(
            self,
            num_leaves_to_search=num_leaves_to_search,
            num_reordering_candidates=num_reordering_candidates,
        )

    def search_kwargs(self, k: int = 0) -> SearchKnobs:
        """The query-time knobs of this index, as keyword arguments of ScaNN's search calls.

        Every search of this index (the SavedModel's signatures, the cross-check through the
        TensorFlow op, the in-process twin during tuning, evaluation and benchmarks) passes
        these, so all of them search the same way.

        Args:
            k: The number of results asked for: at least this many candidates are
                reordered (ScaNN needs `pre_reorder_num_neighbors >= k`).

        Returns:
            Empty for brute force (nothing to choose at query time), else
            `leaves_to_search` and `pre_reorder_num_neighbors`.
        """
        if self.brute_force:
            return {}
        return {
            "leaves_to_search": self.num_leaves_to_search,
            "pre_reorder_num_neighbors": max(k, self.num_reordering_candidates),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the manifest."""
        return {"distance_measure": DISTANCE_MEASURE, **dataclasses.asdict(self)}


def single_band(config: IndexConfig, k: int) -> tuple[SearchBand, ...]:
    """The band table of an untuned index: its one knob pair for every k, tuned (if at all)
    for the default k (the filtered search grows from there). Brute force: no knobs."""
    if config.brute_force:
        return (SearchBand(k),)
    return (SearchBand(k, config.num_leaves_to_search, config.num_reordering_candidates),)


def band_kwargs(bands: tuple[SearchBand, ...], k: int) -> SearchKnobs:
    """`IndexConfig.search_kwargs(k)` for a band table: the knobs of the band of k, as
    every search of the exported index passes them (graph, native bundle, evaluation)."""
    pre_reorder, leaves = SearchSettings(k, k, bands).knobs(k)
    if pre_reorder < 0 and leaves < 0:
        return {}
    return {"leaves_to_search": leaves, "pre_reorder_num_neighbors": pre_reorder}


def default_config(num_candidates: int, *, k: int = 10, max_k: int = 100) -> IndexConfig:
    """The index a catalogue of `num_candidates` gets when the user sets nothing.

    About sqrt(n) leaves, searching ~5% of them, reordering enough candidates for `max_k`;
    brute force where the catalogue is tiny.
    """
    if num_candidates <= BRUTE_FORCE_MAX_CANDIDATES:
        reorder = _reorder_default(k, max_k)
        return IndexConfig(brute_force=True, num_reordering_candidates=min(reorder, num_candidates))
    return tree_config(num_candidates, k=k, max_k=max_k)


def tree_config(num_candidates: int, *, k: int = 10, max_k: int = 100) -> IndexConfig:
    """Tree + asymmetric hashing + reordering defaults for any catalogue size.

    What `default_config` picks above `BRUTE_FORCE_MAX_CANDIDATES`; also used when the user
    asks for a tree on a small catalogue (tests, tuning demos).
    """
    leaves = max(2, min(num_candidates, round(math.sqrt(num_candidates))))
    return IndexConfig(
        num_leaves=leaves,
        num_leaves_to_search=max(1, min(leaves, round(leaves * 0.05))),
        num_reordering_candidates=min(_reorder_default(k, max_k), num_candidates),
        training_sample_size=min(num_candidates, DEFAULT_TRAINING_SAMPLE_SIZE),
        brute_force=False,
    )


def _reorder_default(k: int, max_k: int) -> int:
    return max(max_k, 10 * k, 100)


def _configure(builder: Any, config: IndexConfig, num_candidates: int) -> Any:
    if config.brute_force:
        return builder.score_brute_force()
    builder = builder.tree(
        num_leaves=config.num_leaves,
        num_leaves_to_search=config.num_leaves_to_search,
        training_sample_size=min(config.training_sample_size, num_candidates),
        training_iterations=config.training_iterations,
    )
    builder = builder.score_ah(
        config.dimensions_per_block,
        anisotropic_quantization_threshold=config.anisotropic_quantization_threshold,
        training_sample_size=min(config.training_sample_size, num_candidates),
    )
    return builder.reorder(config.num_reordering_candidates)


def build_tf_searcher(embeddings: np.ndarray, config: IndexConfig, k: int) -> ExportedSearcher:
    """Builds the TensorFlow-op ScaNN searcher (`scann.scann_ops`) the SavedModel carries."""
    from scann.scann_ops.py import scann_ops

    db = _as_database(embeddings)
    config.validate(len(db), k)
    return _configure(scann_ops.builder(db, k, DISTANCE_MEASURE), config, len(db)).build()


def build_pybind_searcher(embeddings: np.ndarray, config: IndexConfig, k: int) -> Searcher:
    """Builds the same index as an in-process pybind searcher (for tuning and benchmarks)."""
    from scann.scann_ops.py import scann_ops_pybind

    db = _as_database(embeddings)
    config.validate(len(db), k)
    return _configure(scann_ops_pybind.builder(db, k, DISTANCE_MEASURE), config, len(db)).build()


def pybind_twin(
    tf_searcher: ExportedSearcher, embeddings: np.ndarray, config: IndexConfig, k: int
) -> Searcher:
    """The very index `tf_searcher` holds, as an in-process pybind searcher.

    Training a second index with the same config gives a different tree (16% equal results
    in a trial), so the trained TF searcher's tensors are written as pybind artifacts and
    loaded: tuning, benchmarks and the native bundle then use exactly what the SavedModel
    serves. Brute force has nothing trained and is simply built again.
    """
    if config.brute_force:
        return build_pybind_searcher(embeddings, config, k)
    from scann.scann_ops.py import scann_ops_pybind

    with tempfile.TemporaryDirectory(prefix="scann-twin-") as tmp:
        write_pybind_artifacts(tf_searcher, Path(tmp))
        return scann_ops_pybind.load_searcher(tmp)


def write_pybind_artifacts(tf_searcher: ExportedSearcher, root: Path) -> None:
    """Writes a trained tree + AH TF searcher's tensors as ScaNN pybind artifacts in `root`."""
    from scann.scann_ops.py import scann_ops

    tensors = [t.numpy() for t in scann_ops.scann_to_tensors(tf_searcher.searcher_handle)]
    scann_config, partitioner, tokens, codebook, hashed, *_unused_int8, dataset = tensors
    (root / "scann_config.pb").write_bytes(scann_config[0])
    assets = {
        "AH_CENTERS": _write_bytes(root / "ah_codebook.pb", codebook[0]),
        "PARTITIONER": _write_bytes(root / "serialized_partitioner.pb", partitioner[0]),
        "TOKENIZATION_NPY": _write_npy(root / "datapoint_to_token.npy", tokens),
        "AH_DATASET_NPY": _write_npy(root / "hashed_dataset.npy", hashed),
        "DATASET_NPY": _write_npy(root / "dataset.npy", dataset),
    }
    text = "".join(
        f'assets {{\n  asset_type: {kind}\n  asset_path: "{path}"\n}}\n'
        for kind, path in assets.items()
    )
    (root / "scann_assets.pbtxt").write_text(text)


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _write_npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _as_database(embeddings: np.ndarray) -> np.ndarray:
    db = np.ascontiguousarray(embeddings, dtype=np.float32)
    if db.ndim != 2 or db.shape[0] == 0:
        raise ValueError(
            f"candidate embeddings must be a non-empty 2-D float array [n, dim], got shape {db.shape}"
        )
    if not np.isfinite(db).all():
        raise ValueError("candidate embeddings contain NaN or Inf; fix the candidate tower output")
    return db


INDEX_KINDS = ("auto", "tree", "brute-force")


@dataclass(frozen=True)
class IndexOptions:
    """What the user asked for; `resolve` fills the rest from the catalogue size.

    Attributes:
        kind: "auto" (brute force for tiny catalogues, else a tree), "tree" or "brute-force".
        Other attributes: `IndexConfig` knobs; None means "the default for this catalogue".
    """

    kind: str = "auto"
    num_leaves: int | None = None
    num_leaves_to_search: int | None = None
    num_reordering_candidates: int | None = None
    dimensions_per_block: int | None = None
    anisotropic_quantization_threshold: float | None = None
    training_sample_size: int | None = None
    training_iterations: int | None = None

    def resolve(self, num_candidates: int, *, k: int, max_k: int) -> IndexConfig:
        """The validated `IndexConfig` for a catalogue of `num_candidates`.

        Raises:
            ValueError: Unknown kind or a knob that cannot work (naming the option).
        """
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"--index {self.kind!r} must be one of {', '.join(INDEX_KINDS)}")
        tree_asked = self.kind == "tree" or (self.kind == "auto" and self.num_leaves is not None)
        if self.kind == "brute-force":
            reorder = min(_reorder_default(k, max_k), num_candidates)
            base = IndexConfig(brute_force=True, num_reordering_candidates=reorder)
        elif tree_asked:
            base = tree_config(num_candidates, k=k, max_k=max_k)
        else:
            base = default_config(num_candidates, k=k, max_k=max_k)
        overrides = {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if name != "kind" and value is not None
        }
        if "num_leaves" in overrides and "num_leaves_to_search" not in overrides:
            overrides["num_leaves_to_search"] = max(1, round(overrides["num_leaves"] * 0.05))
        config = dataclasses.replace(base, **overrides)
        config.validate(num_candidates, k)
        return config
