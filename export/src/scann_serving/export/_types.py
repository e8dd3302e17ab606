"""The vocabulary the export's steps share: progress, searchers, the catalogue and queries.

This module sits below every other module of the package and imports none of them, so
the steps (`_index`, `_evaluation`, `_tuning`, `_stages`, `_pipeline`) can all name these
types without importing each other. Nothing here imports TensorFlow or ScaNN.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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
        attributes: The candidates' attributes, row-aligned, an `_attributes.AttributeTable`
            (typed loosely: this module sits below every other one and imports none), or
            None: no `retrieve_filtered`.
    """

    identifiers: np.ndarray
    embeddings: np.ndarray
    original_size: int
    attributes: Any = None


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


#: The dtype of the exported `query` input when the query tower takes integer ids (whatever
#: the tower's own integer dtype): one wire type for every integer model, wide enough for
#: int64 towers, and what JSON numbers and numpy's default integers already are.
INTEGER_QUERY_DTYPE = "int64"
STRING_QUERY_DTYPE = "string"
_INTEGER_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_DECIMAL = re.compile(r"[+-]?[0-9]+", re.ASCII)


@dataclass(frozen=True)
class QueryKeySpec:
    """What the exported `query` input takes: raw string keys, or integer ids.

    Recorded in the manifest as `query_key` (`to_dict`); the server and the client read it
    to check ids before a call, the exported graph checks them again (for TF Serving).

    Attributes:
        tower_dtype: The query tower's own input dtype: "string", "int32" or "int64".
        min_id: The smallest id the tower knows (integer towers with a lookup table), or None.
        max_id: The largest id the tower knows, or None when it accepts any id of its dtype.
    """

    tower_dtype: str = STRING_QUERY_DTYPE
    min_id: int | None = None
    max_id: int | None = None

    @property
    def integer(self) -> bool:
        """Whether the tower takes integer ids."""
        return self.tower_dtype != STRING_QUERY_DTYPE

    @property
    def dtype(self) -> str:
        """The dtype of the exported `query` input: "string" or "int64"."""
        return INTEGER_QUERY_DTYPE if self.integer else STRING_QUERY_DTYPE

    @property
    def bounds(self) -> tuple[int, int]:
        """The valid ids, inclusive: the tower's known ids, else its dtype's range."""
        low, high = _INTEGER_RANGES.get(self.tower_dtype, _INTEGER_RANGES["int64"])
        return (
            low if self.min_id is None else self.min_id,
            high if self.max_id is None else self.max_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `query_key` block."""
        return {
            "dtype": self.dtype,
            "tower_dtype": self.tower_dtype,
            "min_id": self.min_id,
            "max_id": self.max_id,
        }

    def sample(self, n: int) -> np.ndarray:
        """`n` keys the tower accepts (warmup requests of an export without a dataset)."""
        if not self.integer:
            return np.asarray([f"query-{i}" for i in range(n)], dtype=object)
        low, high = self.bounds
        start = max(low, 0) if low <= 0 <= high else low
        return np.arange(start, min(start + n - 1, high) + 1, dtype=np.int64)

    def parse(self, keys: Iterable[Any], source: str) -> np.ndarray:
        """Raw keys as the exported `query` input takes them (object strings or int64).

        Raises:
            ValueError: A key is not an integer, or outside the tower's ids (naming `source`).
        """
        if not self.integer:
            return np.asarray([str(key) for key in keys], dtype=object)
        low, high = self.bounds
        ids = []
        for key in keys:
            text = key.decode() if isinstance(key, bytes) else str(key)
            if isinstance(key, bool | float) or not _DECIMAL.fullmatch(text):
                raise ValueError(
                    f"{source}: key {key!r} is not an integer id, but the query tower takes "
                    f"{self.tower_dtype} ids; use integer ids"
                )
            if not low <= int(text) <= high:
                raise ValueError(
                    f"{source}: id {text} is outside the query tower's ids {low}..{high}"
                )
            ids.append(int(text))
        return np.asarray(ids, dtype=np.int64)
