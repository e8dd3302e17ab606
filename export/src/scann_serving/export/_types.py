"""The vocabulary the export's steps share: progress, searchers, the catalogue and queries.

This module sits below every other module of the package and imports none of them, so
the steps (`_index`, `_evaluation`, `_tuning`, `_stages`, `_pipeline`) can all name these
types without importing each other. Nothing here imports TensorFlow or ScaNN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, runtime_checkable

import numpy as np

#: Receives one line of progress per step (stderr by default, `lambda _: None` to silence).
Progress = Callable[[str], None]


class SearchKnobs(TypedDict, total=False):
    """Query-time search parameters, under the keyword names ScaNN's search calls take.

    Both keys are absent for brute force: the searcher then uses its own config.
    `IndexConfig.search_kwargs` is the one place that produces them.

    Attributes:
        leaves_to_search: Tree partitions searched per query.
        pre_reorder_num_neighbors: Candidates kept after hashing, re-scored exactly.
    """

    leaves_to_search: int
    pre_reorder_num_neighbors: int


@runtime_checkable
class Searcher(Protocol):
    """What the export calls on a ScaNN searcher.

    ScaNN's in-process pybind searcher (`build_pybind_searcher`, `pybind_twin`, the brute
    force baseline) and its TensorFlow-op searcher (`build_tf_searcher`) both have this
    shape. Each call returns `(indices, scores)`, both `[batch, k]` (`[k]` for `search`):
    numpy arrays from the pybind searcher, tensors from the TensorFlow one. A knob that is
    not passed uses the searcher's own config.
    """

    def search(
        self,
        query: np.ndarray,
        /,
        final_num_neighbors: int = ...,
        pre_reorder_num_neighbors: int = ...,
        leaves_to_search: int = ...,
    ) -> tuple[Any, Any]:
        """One query, float32 `[dim]`."""
        ...

    def search_batched(
        self,
        queries: np.ndarray,
        /,
        final_num_neighbors: int = ...,
        pre_reorder_num_neighbors: int = ...,
        leaves_to_search: int = ...,
    ) -> tuple[Any, Any]:
        """A batch of queries, float32 `[batch, dim]`, on one thread."""
        ...

    def search_batched_parallel(
        self,
        queries: np.ndarray,
        /,
        final_num_neighbors: int = ...,
        pre_reorder_num_neighbors: int = ...,
        leaves_to_search: int = ...,
    ) -> tuple[Any, Any]:
        """A batch of queries, float32 `[batch, dim]`, on every core."""
        ...


@runtime_checkable
class ExportedSearcher(Searcher, Protocol):
    """The TensorFlow-op searcher a SavedModel carries (`scann.scann_ops.ScannSearcher`).

    Attributes:
        searcher_handle: The index's TensorFlow resource handle (read by `pybind_twin`).
    """

    searcher_handle: Any

    def serialize_to_module(self) -> Any:
        """The index as a `tf.Module` of variables, to be saved with the SavedModel."""
        ...


@dataclass
class Catalogue:
    """The candidates the index is built over.

    Attributes:
        identifiers: Candidate identifiers, string `[n]`.
        embeddings: float32 `[n, dim]`, row-aligned with `identifiers`.
        original_size: Candidates before augmentation (`--augment-candidates`).
    """

    identifiers: np.ndarray
    embeddings: np.ndarray
    original_size: int


@dataclass
class Queries:
    """Held-out queries: keys, their embeddings, and the test pairs mapped to rows.

    Attributes:
        keys: Raw query keys `[q]` (what the warmup requests send).
        embeddings: float32 `[q, dim]`.
        pair_rows: For each test pair, its query's row (None without a dataset).
        pair_items: For each test pair, its item's catalogue row (None without a dataset).
    """

    keys: np.ndarray
    embeddings: np.ndarray
    pair_rows: np.ndarray | None = None
    pair_items: np.ndarray | None = None
