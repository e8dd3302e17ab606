"""The exported TensorFlow module: a query tower, a ScaNN index and the four signatures.

The ScaNN searcher is saved as its tensors (`ScannState` variables); each signature turns
them back into a searcher handle with `tensors_to_scann`, whose kernel keeps the handle it
built on the first call, so only the first (warmup) request pays for rebuilding the index.
(A `TrackableResource` would be neater but cannot be exported: its creation function would
have to read the state variables in the export graph.) Signature contract
(docs/ARCHITECTURE.md): `serving_default`, `retrieve`, `search_embedding`,
`retrieve_with_exclusions` and, with candidate attributes, `retrieve_filtered`
(`_filtering`), each returning `identifiers` (string [batch, k]) and `scores`
(float32 [batch, k]); `query` is string [batch], or int64 [batch] for a tower over ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from scann_serving.client.contract import (
    ALLOW,
    DENY,
    EMBEDDING,
    EXCLUDE,
    IDENTIFIERS,
    NUMERIC,
    QUERY,
    RETRIEVE_FILTERED,
    SCORES,
    SIGNATURE_NAMES,
    K,
)
from scann_serving.export._attributes import AttributeTable
from scann_serving.export._index import IndexConfig, single_band
from scann_serving.export._text import encode_utf8
from scann_serving.export._types import ExportedSearcher
from scann_serving.server._native_search import SearchBand, check_bands

#: Batches at least this large are searched with ScaNN's multi-threaded batched search.
PARALLEL_MIN_BATCH = 8


class RetrievalModule(tf.Module):
    """Two-tower retrieval: a query tower in front of a ScaNN index over the candidates.

    Args:
        query_model: Maps raw query keys (`query_dtype` `[batch]`) to float embeddings
            `[batch, dim]`.
        identifiers: Candidate identifiers, string `[n]`, row-aligned with the index.
        searcher: A `scann.scann_ops` TensorFlow searcher built over the candidate embeddings.
        index_config: The searcher's config (its reordering size bounds the query-time k).
        embedding_dim: The embedding width shared by both towers.
        k: Number of results `serving_default` returns.
        max_k: Largest k `retrieve` accepts.
        query_dtype: The dtype of the `query` input: "string" (raw keys), or "int64" for a
            query tower over integer ids.
        attributes: The candidates' attributes (row-aligned); adds `retrieve_filtered`.
        embeddings: The candidate embeddings, float32 `[n, dim]` (needed with `attributes`:
            the filtered search scores small passing sets exactly).
        exact_max_passing: `retrieve_filtered` scores the passing candidates exactly when
            at most this many pass (default: `_filtering.exact_max_passing(n)`).
        search_bands: The query-time knobs per band of k (`_tuning.tune_bands`); default:
            `index_config`'s one pair for every k.
    """

    def __init__(
        self,
        *,
        query_model: Callable[[tf.Tensor], tf.Tensor],
        identifiers: np.ndarray,
        searcher: ExportedSearcher,
        index_config: IndexConfig,
        embedding_dim: int,
        k: int,
        max_k: int,
        query_dtype: str = "string",
        attributes: AttributeTable | None = None,
        embeddings: np.ndarray | None = None,
        exact_max_passing: int | None = None,
        search_bands: tuple[SearchBand, ...] | None = None,
    ) -> None:
        super().__init__(name="scann_retrieval")
        n = len(identifiers)
        if not 1 <= k <= max_k <= n:
            raise ValueError(f"need 1 <= k ({k}) <= max_k ({max_k}) <= catalogue size ({n})")
        self.query_model = query_model
        self.identifiers = tf.Variable(
            encode_utf8(identifiers), trainable=False, name="identifiers"
        )
        self.index_state = searcher.serialize_to_module()
        self.default_k = tf.constant(k, tf.int32)
        self.max_k = tf.constant(max_k, tf.int32)
        # Passed at query time, so a tuned table needs no retraining of the index; the row
        # is picked from the request's k in the graph, so TF Serving does the same. Brute
        # force has no knobs: 0 reordering and -1 leaves leave both to the searcher.
        bands = search_bands or single_band(index_config, k)
        check_bands(bands)
        self.search_bands = bands
        self.band_limits = tf.constant([b.up_to_k for b in bands], tf.int32)
        self.band_leaves = tf.constant([b.leaves_to_search for b in bands], tf.int32)
        self.band_reordering = tf.constant([b.reordering for b in bands], tf.int32)
        self.num_leaves = 0 if index_config.brute_force else index_config.num_leaves
        self.num_candidates = n
        self.candidate_filter = None
        if attributes is not None:
            from scann_serving.export._filtering import CandidateFilter
            from scann_serving.export._filtering import exact_max_passing as default_exact

            if embeddings is None:
                raise ValueError("attributes need the candidate embeddings (embeddings=...)")
            self.candidate_filter = CandidateFilter(
                attributes,
                embeddings,
                exact_max_passing=exact_max_passing
                if exact_max_passing is not None
                else default_exact(n),
            )
        self._build_signatures(embedding_dim, tf.as_dtype(query_dtype))

    def _build_signatures(self, dim: int, query_dtype: tf.DType) -> None:
        query = tf.TensorSpec([None], query_dtype, name=QUERY)
        self.serving_default = tf.function(
            lambda query: self._retrieve(self._embed(query), self.default_k),
            input_signature=[query],
        )
        self.retrieve = tf.function(
            lambda query, k: self._retrieve(self._embed(query), self._checked_k(k)),
            input_signature=[query, tf.TensorSpec([], tf.int32, name=K)],
        )
        self.search_embedding = tf.function(
            lambda embedding: self._retrieve(self._checked_embedding(embedding), self.default_k),
            input_signature=[tf.TensorSpec([None, dim], tf.float32, name=EMBEDDING)],
        )
        self.retrieve_with_exclusions = tf.function(
            lambda query, exclude: self._retrieve_excluding(self._embed(query), exclude),
            input_signature=[query, tf.TensorSpec([None, None], tf.string, name=EXCLUDE)],
        )
        if self.candidate_filter is not None:
            tokens = [
                tf.TensorSpec([None, None], tf.string, name=ALLOW),
                tf.TensorSpec([None, None], tf.string, name=DENY),
                tf.TensorSpec([None, None], tf.string, name=NUMERIC),
            ]
            self.retrieve_filtered = tf.function(
                lambda query, k, allow, deny, numeric: self._retrieve_filtered(
                    self._embed(query), self._checked_k(k), allow, deny, numeric
                ),
                input_signature=[query, tf.TensorSpec([], tf.int32, name=K), *tokens],
            )

    @property
    def signature_names(self) -> tuple[str, ...]:
        """The signatures this module exports (`retrieve_filtered` only with attributes)."""
        extra = (RETRIEVE_FILTERED,) if self.candidate_filter is not None else ()
        return (*SIGNATURE_NAMES, *extra)

    def signatures(self) -> dict[str, Any]:
        """The concrete functions to pass to `tf.saved_model.save(signatures=...)`."""
        return {name: getattr(self, name).get_concrete_function() for name in self.signature_names}

    def _embed(self, query: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.query_model(query), tf.float32)

    def _checked_k(self, k: tf.Tensor) -> tf.Tensor:
        message = "k must be between 1 and max_k (the exported bound); lower k or re-export with a larger --max-k"
        with tf.control_dependencies(
            [
                tf.debugging.assert_greater_equal(k, 1, message=message),
                tf.debugging.assert_less_equal(k, self.max_k, message=message),
            ]
        ):
            return tf.identity(k)

    def _checked_embedding(self, embedding: tf.Tensor) -> tf.Tensor:
        check = tf.debugging.assert_all_finite(
            embedding, message="embedding contains NaN or Inf; send finite float32 values"
        )
        with tf.control_dependencies([check]):
            return tf.identity(embedding)

    def _band(self, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(up_to_k, leaves, reordering) of the band of k: the first whose `up_to_k >= k`,
        else the last (`SearchSettings.band` natively)."""
        row = tf.searchsorted(self.band_limits, tf.reshape(tf.cast(k, tf.int32), [1]))[0]
        row = tf.minimum(row, tf.size(self.band_limits) - 1)
        return (
            tf.gather(self.band_limits, row),
            tf.gather(self.band_leaves, row),
            tf.gather(self.band_reordering, row),
        )

    def _search(
        self,
        embeddings: tf.Tensor,
        k: tf.Tensor,
        knobs: tuple[tf.Tensor, tf.Tensor] | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        # `band_kwargs(bands, k)` for a k known only at query time; `knobs` (leaves,
        # reordering) override the band's. Reordering is on in every band or in none.
        _, band_leaves, band_reorder = self._band(k)
        leaves, reorder = knobs or (band_leaves, band_reorder)
        pre_reorder = tf.where(self.band_reordering[0] > 0, tf.maximum(k, reorder), -1)
        parallel = tf.shape(embeddings)[0] >= PARALLEL_MIN_BATCH
        from scann.scann_ops.py import scann_ops

        handle = self.index_state.recreate_handle()
        indices, scores = scann_ops.scann_search_batched(
            handle, embeddings, k, pre_reorder, leaves, parallel
        )
        return indices, scores

    def _deep_search(
        self, embeddings: tf.Tensor, depth: tf.Tensor, k: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """ScaNN's `depth` best for a filtered request of k, searching more leaves the deeper
        it goes: the leaves of k's band hold about its `up_to_k` neighbours; `depth` of them
        spread over more, and `(depth / up_to_k) ** LEAVES_EXPONENT` x the leaves keeps
        recall@k of the filtered results at the tuned level (measured:
        benchmarks/bench_filtering.py; `_native_filter.deep_search_knobs` natively)."""
        from scann_serving.export._filtering import LEAVES_EXPONENT

        if self.num_leaves == 0:  # brute force: no leaves to widen
            return self._search(embeddings, depth)
        up_to_k, band_leaves, band_reorder = self._band(k)
        ratio = tf.maximum(
            tf.constant(1.0, tf.float64), tf.cast(depth, tf.float64) / tf.cast(up_to_k, tf.float64)
        )
        leaves = tf.math.ceil(tf.cast(band_leaves, tf.float64) * ratio**LEAVES_EXPONENT)
        leaves = tf.minimum(tf.cast(leaves, tf.int32), self.num_leaves)
        # The band's reordering budget per result, kept for `depth` results: reordering only
        # `depth` candidates would leave no slack for the hashing's errors.
        reorder = tf.cast(tf.math.ceil(tf.cast(band_reorder, tf.float64) * ratio), tf.int32)
        return self._search(embeddings, depth, (leaves, tf.minimum(reorder, self.num_candidates)))

    def _retrieve_filtered(
        self,
        embeddings: tf.Tensor,
        k: tf.Tensor,
        allow: tf.Tensor,
        deny: tf.Tensor,
        numeric: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        assert self.candidate_filter is not None
        rows, scores = self.candidate_filter(
            embeddings,
            k,
            allow,
            deny,
            numeric,
            lambda queries, depth: self._deep_search(queries, depth, k),
        )
        # Padding rows (-1) read as b"". Gather, never read the whole variable: a dense read
        # of a variable also read sparsely copies it (a million strings per call).
        found = tf.gather(self.identifiers, tf.maximum(rows, 0))
        return {IDENTIFIERS: tf.where(rows < 0, tf.constant(b""), found), SCORES: scores}

    def _retrieve(self, embeddings: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        indices, scores = self._search(embeddings, k)
        return {
            IDENTIFIERS: tf.gather(self.identifiers, tf.cast(indices, tf.int32)),
            SCORES: scores,
        }

    def _retrieve_excluding(
        self, embeddings: tf.Tensor, exclude: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        # Over-fetch by the number of exclusions, drop the excluded, keep the best k in order.
        n_candidates = tf.shape(self.identifiers)[0]
        k = self.default_k
        fetch = tf.minimum(k + tf.shape(exclude)[1], n_candidates)
        indices, scores = self._search(embeddings, fetch)
        found = tf.gather(self.identifiers, tf.cast(indices, tf.int32))
        excluded = tf.reduce_any(found[:, :, None] == exclude[:, None, :], axis=2)
        masked = tf.where(excluded, tf.fill(tf.shape(scores), -np.inf), scores)
        top = tf.math.top_k(masked, k=tf.minimum(k, fetch))
        return {
            IDENTIFIERS: tf.gather(found, top.indices, batch_dims=1),
            SCORES: top.values,
        }
