"""The native bundle's search: the SavedModel's signatures in numpy over ScaNN's pybind searcher.

Each method here mirrors one piece of the exported graph (export's `_module.RetrievalModule`):
`QueryTable.embed` is the lookup query tower, `NativeIndex.search` is its `_search` (the same
search-band table, multi-threaded from the same batch size), `retrieve_excluding` its
over-fetch-mask-top-k, `retrieve_filtered` its `CandidateFilter` (`_native_filter`). The
export verifies the two against each other before it publishes, so a change on one side
that the other does not follow fails the export, not a user.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scann_serving.client.contract import (
    ALLOW,
    DENY,
    EMBEDDING,
    EXCLUDE,
    NUMERIC,
    QUERY,
    RETRIEVE,
    RETRIEVE_FILTERED,
    RETRIEVE_WITH_EXCLUSIONS,
    SEARCH_EMBEDDING,
    SERVING_DEFAULT,
    K,
)
from scann_serving.server._native_filter import FilteredSearch, deep_search_knobs

#: Batches at least this large use ScaNN's multi-threaded batched search (as the graph does).
PARALLEL_MIN_BATCH = 8

TOWER_STRING = "string_lookup"
TOWER_INTEGER = "integer_table"


@dataclass(frozen=True)
class SearchBand:
    """One row of the search-band table: the knobs of every k up to `up_to_k`.

    Attributes:
        up_to_k: The largest k this band's knobs were chosen for; a request of k uses the
            first band with `up_to_k >= k`, and the last band serves every larger k too.
        leaves_to_search: Tree partitions searched per query; -1 lets the searcher decide.
        reordering: Candidates re-scored exactly (at least k); 0 means no reordering knob.
    """

    up_to_k: int
    leaves_to_search: int = -1
    reordering: int = 0

    def to_dict(self) -> dict[str, int]:
        """The JSON form (`bundle.json`'s and the manifest's `search_bands` rows)."""
        return {
            "up_to_k": self.up_to_k,
            "leaves_to_search": self.leaves_to_search,
            "reordering": self.reordering,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> SearchBand:
        """The inverse of `to_dict`."""
        return cls(int(row["up_to_k"]), int(row["leaves_to_search"]), int(row["reordering"]))


@dataclass(frozen=True)
class SearchSettings:
    """The query-time knobs the SavedModel bakes in.

    Attributes:
        k: What `serving_default`, `search_embedding` and `retrieve_with_exclusions` return.
        max_k: The largest k `retrieve` accepts.
        bands: The search-band table, by increasing `up_to_k`; a larger band never
            searches fewer leaves or reorders fewer candidates (the graph holds the same).
    """

    k: int
    max_k: int
    bands: tuple[SearchBand, ...]
    #: Each band's up_to_k, for `band` (looked up on every search).
    _limits: tuple[int, ...] = field(init=False, repr=False, compare=False)
    #: `knobs` by k, filled as searches ask (k is at most max_k, so it stays small).
    _knobs: dict[int, tuple[int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_bands(self.bands)
        object.__setattr__(self, "_limits", tuple(b.up_to_k for b in self.bands))
        object.__setattr__(self, "_knobs", {})

    def band(self, k: int) -> SearchBand:
        """The band a search of k results uses (the graph's `tf.searchsorted`)."""
        row = bisect.bisect_left(self._limits, k)
        return self.bands[min(row, len(self.bands) - 1)]

    def knobs(self, k: int) -> tuple[int, int]:
        """(pre_reorder_num_neighbors, leaves_to_search) of the graph's search of k results."""
        knobs = self._knobs.get(k)
        if knobs is None:
            band = self.band(k)
            pre_reorder = max(k, band.reordering) if band.reordering > 0 else -1
            knobs = (pre_reorder, band.leaves_to_search)
            if len(self._knobs) < 4096:  # k comes from requests: bounded all the same
                self._knobs[k] = knobs
        return knobs


def check_bands(bands: tuple[SearchBand, ...]) -> None:
    """Raises `ValueError` unless `bands` is a table both the graph and the native search
    can pick from: non-empty, `up_to_k` increasing, knobs never shrinking, and reordering
    on in every band or in none (brute force)."""
    if not bands:
        raise ValueError("the search-band table is empty; it needs at least one band")
    for low, high in itertools.pairwise(bands):
        if high.up_to_k <= low.up_to_k:
            raise ValueError(f"search bands must have increasing up_to_k, got {list(bands)}")
        if high.leaves_to_search < low.leaves_to_search or high.reordering < low.reordering:
            raise ValueError(f"a larger search band must never search less, got {list(bands)}")
    if len({b.reordering > 0 for b in bands}) > 1:
        raise ValueError(f"reordering must be on in every search band or in none: {list(bands)}")


@dataclass(frozen=True)
class QueryTable:
    """A query tower that is a lookup table: a key picks one row of `rows`.

    Attributes:
        kind: `TOWER_STRING` (keys are UTF-8 bytes) or `TOWER_INTEGER` (ids).
        rows: float32 `[rows, dim]`, the tower's output for each row.
        keys: String towers: key -> row.
        oov_row: String towers: the row every unknown key gets (the lookup's OOV bucket).
        min_id: Integer towers: the id of row 0 (ids are validated before they get here).
    """

    kind: str
    rows: np.ndarray
    keys: dict[bytes, int] | None = None
    oov_row: int = 0
    min_id: int = 0

    def embed(self, query: np.ndarray) -> np.ndarray:
        """Raw keys (`[batch]`: object array of bytes, or int64) -> float32 `[batch, dim]`."""
        if self.kind == TOWER_STRING:
            assert self.keys is not None
            get, oov = self.keys.get, self.oov_row
            index = np.fromiter((get(key, oov) for key in query.tolist()), np.int64, len(query))
        else:
            index = np.asarray(query, np.int64) - self.min_id
            if index.size and (index.min() < 0 or index.max() >= len(self.rows)):
                raise ValueError(
                    f"query ids must lie in {self.min_id}..{self.min_id + len(self.rows) - 1}"
                )
        return self.rows[index]

    def rows_of(self, keys: list[Any]) -> list[int] | None:
        """The row of each of a few raw keys (UTF-8 bytes, or ints for an integer tower),
        as `embed` would pick it; None when a key is one `embed`'s callers must check and
        refuse first (a string that is not UTF-8, an id outside the table), so the caller
        takes the full path and its error."""
        if self.kind == TOWER_STRING:
            assert self.keys is not None
            get, oov = self.keys.get, self.oov_row
            try:  # every key, known ones too: the full path checks them all
                for key in keys:
                    key.decode("utf-8")
            except (AttributeError, UnicodeDecodeError):
                return None
            return [get(key, oov) for key in keys]
        low, size = self.min_id, len(self.rows)
        found = [key - low for key in keys]
        if all(0 <= row < size for row in found):
            return found
        return None


class NativeIndex:
    """A native bundle, loaded: ScaNN searcher, identifiers, knobs and (maybe) the query table.

    Args:
        searcher: ScaNN's pybind searcher (`scann_ops_pybind.load_searcher`).
        identifiers: Candidate identifiers as an object array of UTF-8 bytes `[n]`.
        settings: The exported query-time knobs.
        table: The query tower when it is a lookup table, else None (embeddings only).
        filtered: `retrieve_filtered`'s attributes and settings, when the version has them.
    """

    def __init__(
        self,
        searcher: Any,
        identifiers: np.ndarray,
        settings: SearchSettings,
        table: QueryTable | None,
        filtered: FilteredSearch | None = None,
    ) -> None:
        self.searcher = searcher
        self.identifiers = identifiers
        self.settings = settings
        self.table = table
        self.filtered = filtered

    @property
    def num_candidates(self) -> int:
        """Rows in the index."""
        return len(self.identifiers)

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best candidates of each row: (identifiers object `[b, k]`, scores float32)."""
        indices, scores = self._search_indices(embeddings, k)
        return self.identifiers[indices], scores

    def _search_indices(
        self, embeddings: np.ndarray, k: int, knobs: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """ScaNN's k best rows; `knobs` (pre_reorder, leaves) override the exported ones."""
        queries = np.ascontiguousarray(embeddings, dtype=np.float32)
        pre_reorder, leaves = knobs or self.settings.knobs(k)
        if len(queries) >= PARALLEL_MIN_BATCH:
            indices, scores = self.searcher.search_batched_parallel(queries, k, pre_reorder, leaves)
        else:
            indices, scores = self.searcher.search_batched(queries, k, pre_reorder, leaves)
        indices, scores = np.asarray(indices, np.int64), np.asarray(scores, np.float32)
        # When the searched leaves hold fewer than k points, pybind pads each row to k with
        # (0, NaN); the TensorFlow op pads only to the longest row of the batch. Match it.
        # Padding fills the ends of rows, so a last column without NaN means no padding
        # (the common case, checked in a fraction of the full count's time).
        if not scores.size or any(last != last for last in scores[:, -1].tolist()):  # NaN
            found = int((~np.isnan(scores)).sum(axis=1).max()) if scores.size else 0
            if found < scores.shape[1]:
                indices, scores = indices[:, :found], scores[:, :found]
        return indices, scores

    def embed(self, query: np.ndarray) -> np.ndarray:
        """The query tower's embeddings of raw keys (requires a table)."""
        if self.table is None:
            raise LookupError("this bundle has no query table")
        return self.table.embed(query)

    def retrieve(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`serving_default` / `retrieve`: raw keys -> the k best candidates."""
        return self.search(self.embed(query), k)

    def retrieve_rows(self, rows: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """`retrieve` of keys already looked up (`QueryTable.rows_of`): the same search."""
        assert self.table is not None
        table = self.table.rows
        first = rows[0]  # one key (most calls): a view, not a gather
        return self.search(table[first : first + 1] if len(rows) == 1 else table[rows], k)

    def search_excluding(
        self, embeddings: np.ndarray, exclude: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exported k best, none of them in that row of `exclude` (object `[b, n]`).

        Over-fetches k + n, sets the excluded scores to -inf and keeps the best k by a
        stable sort, which is how `tf.math.top_k` orders ties (lower index first); when the
        catalogue cannot supply k others, excluded ones fill the last places with -inf.
        """
        k = self.settings.k
        fetch = min(k + exclude.shape[1], self.num_candidates)
        indices, scores = self._search_indices(embeddings, fetch)
        found = self.identifiers[indices]
        excluded = (found[:, :, None] == exclude[:, None, :]).any(axis=2)
        masked = np.where(excluded, np.float32(-np.inf), scores)
        order = np.argsort(-masked, axis=1, kind="stable")[:, : min(k, fetch)]
        return (
            np.take_along_axis(found, order, axis=1),
            np.take_along_axis(masked, order, axis=1).astype(np.float32),
        )

    def retrieve_excluding(
        self, query: np.ndarray, exclude: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`retrieve_with_exclusions`: raw keys and exclusions -> the exported k best."""
        return self.search_excluding(self.embed(query), exclude)

    def retrieve_filtered(
        self, query: np.ndarray, k: int, allow: np.ndarray, deny: np.ndarray, numeric: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`retrieve_filtered`: the k best passing candidates, padded with b"" and -inf."""
        if self.filtered is None:
            raise LookupError("this bundle has no candidate attributes")
        embeddings = np.ascontiguousarray(self.embed(query), np.float32)
        mask = self.filtered.masks(allow, deny, numeric)
        band, n = self.settings.band(k), self.num_candidates
        num_leaves = self.filtered.settings.num_leaves

        def deep(depth: int) -> tuple[np.ndarray, np.ndarray]:
            # The growth starts from the band of the requested k (as the graph's does).
            knobs = deep_search_knobs(
                depth,
                k=band.up_to_k,
                leaves_to_search=band.leaves_to_search,
                reordering=band.reordering,
                num_leaves=num_leaves,
                n=n,
            )
            return self._search_indices(embeddings, depth, knobs)

        rows, scores = self.filtered.search(embeddings, k, mask, deep)
        found = self.identifiers[np.maximum(rows, 0)]
        return np.where(rows < 0, b"", found).astype(object), scores


def run_signature(
    index: NativeIndex, signature: str, inputs: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Runs one of the four signatures natively on validated numpy inputs.

    Returns:
        (identifiers object `[batch, k]` of UTF-8 bytes, scores float32 `[batch, k]`).
    """
    if signature == RETRIEVE_FILTERED:
        return index.retrieve_filtered(
            inputs[QUERY], int(inputs[K]), inputs[ALLOW], inputs[DENY], inputs[NUMERIC]
        )
    if signature == SEARCH_EMBEDDING:
        return index.search(inputs[EMBEDDING], index.settings.k)
    if signature == SERVING_DEFAULT:
        return index.retrieve(inputs[QUERY], index.settings.k)
    if signature == RETRIEVE:
        return index.retrieve(inputs[QUERY], int(inputs[K]))
    if signature == RETRIEVE_WITH_EXCLUSIONS:
        return index.retrieve_excluding(inputs[QUERY], inputs[EXCLUDE])
    raise KeyError(signature)
