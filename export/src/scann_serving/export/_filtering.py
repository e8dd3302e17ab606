"""`retrieve_filtered` in TensorFlow ops, so TF Serving with the ScaNN ops serves it too.

Per query, the graph first computes which candidates pass the filter, exactly, from the
attribute table (`_attributes`): the inverted lists of the allowed and denied tokens
(cost proportional to how many candidates hold them) and one comparison per numeric
restrict over the numeric column. Knowing how many pass, it picks the search:

- few pass (at most `exact_max_passing`): score exactly those candidates (brute force
  over the passing rows): exact, and cheap because the set is small;
- otherwise over-fetch from ScaNN, `OVERFETCH` x k / selectivity neighbours, keep the
  passing ones in rank order, and widen the fetch `WIDEN` times while fewer than k pass
  (an unlucky query whose neighbourhood the filter removes); after `MAX_ROUNDS` it scores
  the passing set exactly instead of widening forever.

Rows with fewer than k passing candidates are padded with identifier b"" and score -inf.
Malformed or unknown tokens and restricts fail a `tf.debugging.Assert`, which TF Serving
answers with INVALID_ARGUMENT (scann-serve checks the same before the graph, with a
cleaner message).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from scann_serving.client.contract import ALLOW, DENY, NUMERIC_RESTRICT_PATTERN, TOKEN_SEPARATOR
from scann_serving.export._attributes import AttributeTable
from scann_serving.export._text import encode_utf8

# The algorithm's constants live in the server, below both implementations of it (this
# graph and the native backend's `_native_filter`), so the two cannot drift.
from scann_serving.server._native_filter import (
    EXACT_MIN_PASSING,
    EXACT_SQRT_FACTOR,
    LEAVES_EXPONENT,
    MAX_ROUNDS,
    OVERFETCH,
    WIDEN,
    exact_max_passing,
)

__all__ = [
    "EXACT_MIN_PASSING",
    "EXACT_SQRT_FACTOR",
    "LEAVES_EXPONENT",
    "MAX_ROUNDS",
    "OVERFETCH",
    "WIDEN",
    "CandidateFilter",
    "exact_max_passing",
]

# (less, equal, greater) that satisfy each operator; NaN (a missing value) is none of them.
_OPERATORS = {
    "<": (1, 0, 0),
    "<=": (1, 1, 0),
    ">": (0, 0, 1),
    ">=": (0, 1, 1),
    "==": (0, 1, 0),
    "!=": (1, 0, 1),
}

#: ScaNN's search: (embeddings [batch, dim], k int32) -> (indices, scores), both [batch, k].
Search = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


class CandidateFilter(tf.Module):
    """The attribute table as TensorFlow state, and the filtered search over it.

    Args:
        table: The attributes, row-aligned with the index.
        embeddings: The candidate embeddings, float32 `[n, dim]` (the exact path scores them).
        exact_max_passing: Passing candidates at or below which they are scored exactly.
    """

    def __init__(
        self, table: AttributeTable, embeddings: np.ndarray, *, exact_max_passing: int
    ) -> None:
        super().__init__(name="candidate_filter")
        n = table.num_candidates
        if n != len(embeddings):
            raise ValueError(f"{n} attribute rows for {len(embeddings)} candidates")
        self.known_namespaces = ", ".join(table.namespaces) or "none"
        self.known_numeric = ", ".join(table.numeric_names) or "none"
        self.namespace_ids = _table(table.namespaces)
        self.token_ids = _table([str(t) for t in table.vocabulary])
        self.numeric_ids = _table(table.numeric_names)
        starts, rows = table.postings()
        self.posting_starts = tf.Variable(starts, trainable=False, name="posting_starts")
        self.posting_rows = tf.Variable(rows, trainable=False, name="posting_rows")
        self.token_namespace = tf.Variable(
            table.token_namespace.astype(np.int64), trainable=False, name="token_namespace"
        )
        self.numeric = tf.Variable(
            table.numeric if table.numeric.shape[1] else np.zeros((n, 1)),
            trainable=False,
            name="numeric_values",
        )
        self.embeddings = tf.Variable(
            np.asarray(embeddings, np.float32), trainable=False, name="candidate_embeddings"
        )
        self.num_namespaces = tf.constant(max(1, len(table.namespaces)), tf.int64)
        self.num_candidates = tf.constant(n, tf.int64)
        self.exact_max_passing = tf.constant(exact_max_passing, tf.int64)

    def __call__(
        self,
        embeddings: tf.Tensor,
        k: tf.Tensor,
        allow: tf.Tensor,
        deny: tf.Tensor,
        numeric: tf.Tensor,
        search: Search,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Row indices (int64 `[batch, k]`, -1 for padding) and scores (-inf for padding)."""
        allow_tokens, allow_ns = self._tokens(ALLOW, allow)
        deny_tokens, _ = self._tokens(DENY, deny)
        mask = self._mask(allow_tokens, allow_ns, deny_tokens, *self._restricts(numeric))
        return self._search(embeddings, tf.cast(k, tf.int64), mask, search)

    # --- parsing, checked ---------------------------------------------------------------

    def _tokens(self, name: str, tokens: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Token ids (-1: a value no candidate has, or padding) and namespace ids (-1: padding)."""
        pad = tf.equal(tokens, "")
        separated = tf.strings.regex_full_match(
            tokens, f"(?s)[^{TOKEN_SEPARATOR}]*{TOKEN_SEPARATOR}.*"
        )
        namespace = tf.strings.regex_replace(tokens, f"(?s){TOKEN_SEPARATOR}.*$", "")
        ns_id = self.namespace_ids.lookup(namespace)
        malformed = ~pad & ~separated
        unknown = ~pad & separated & (ns_id < 0)
        checks = [
            tf.debugging.Assert(
                ~tf.reduce_any(malformed),
                [
                    f"{name} tokens must be 'namespace=value' (e.g. genre=Comedy); malformed:",
                    tf.boolean_mask(tokens, malformed),
                ],
            ),
            tf.debugging.Assert(
                ~tf.reduce_any(unknown),
                [
                    f"{name} tokens name an unknown namespace (this model has: {self.known_namespaces}):",
                    tf.boolean_mask(tokens, unknown),
                ],
            ),
        ]
        with tf.control_dependencies(checks):
            token_id = tf.where(pad, tf.constant(-1, tf.int64), self.token_ids.lookup(tokens))
            return token_id, tf.where(pad, tf.constant(-1, tf.int64), ns_id)

    def _restricts(self, numeric: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """Column, wanted (less, equal, greater) and value of each restrict (padding: column -1)."""
        pad = tf.equal(numeric, "")
        pattern = NUMERIC_RESTRICT_PATTERN
        well_formed = tf.strings.regex_full_match(numeric, pattern)
        text = tf.where(well_formed, numeric, "x==0")
        name = tf.strings.regex_replace(text, pattern, r"\1")
        op = tf.strings.regex_replace(text, pattern, r"\2")
        column = self.numeric_ids.lookup(name)
        malformed = ~pad & ~well_formed
        unknown = ~pad & well_formed & (column < 0)
        checks = [
            tf.debugging.Assert(
                ~tf.reduce_any(malformed),
                [
                    "numeric restricts must be NAME OP NUMBER with OP one of < <= > >= == != (e.g. year>=1990); malformed:",
                    tf.boolean_mask(numeric, malformed),
                ],
            ),
            tf.debugging.Assert(
                ~tf.reduce_any(unknown),
                [
                    f"numeric restricts name an unknown attribute (this model has: {self.known_numeric}):",
                    tf.boolean_mask(numeric, unknown),
                ],
            ),
        ]
        with tf.control_dependencies(checks):
            value = tf.strings.to_number(tf.strings.regex_replace(text, pattern, r"\3"), tf.float64)
            column = tf.where(pad, tf.constant(-1, tf.int64), column)
        wants = [
            tf.reduce_any(
                tf.stack([tf.equal(op, o) for o, w in _OPERATORS.items() if w[j]]), axis=0
            )
            for j in range(3)
        ]
        return column, wants[0], wants[1], wants[2], value

    # --- the mask [batch, n] -----------------------------------------------------------------

    def _rows_of(self, tokens: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """For `tokens` [batch, a]: every (query row, candidate row) holding one of them, as
        the flat position of the token in `tokens` and the candidate row."""
        flat = tf.reshape(tokens, [-1])
        position = tf.where(flat >= 0)[:, 0]
        known = tf.gather(flat, position)
        ranges = tf.ragged.range(
            tf.gather(self.posting_starts, known), tf.gather(self.posting_starts, known + 1)
        )
        return tf.gather(position, ranges.value_rowids()), tf.gather(
            self.posting_rows, ranges.flat_values
        )

    def _mask(
        self,
        allow: tf.Tensor,
        allow_ns: tf.Tensor,
        deny: tf.Tensor,
        columns: tf.Tensor,
        low: tf.Tensor,
        equal: tf.Tensor,
        high: tf.Tensor,
        value: tf.Tensor,
    ) -> tf.Tensor:
        n = self.num_candidates  # not tf.shape(variable): that reads (and copies) it whole
        batch = tf.shape(allow, out_type=tf.int64)[0]
        width = tf.shape(allow, out_type=tf.int64)[1]
        query_of = tf.range(batch)[:, None] + tf.zeros_like(allow)  # [batch, a]
        # Allow. Each distinct (query, namespace) the filter names is one requirement r; a
        # candidate passes a query when it holds an allowed token of each of its
        # requirements (OR within a namespace, AND across). held[row, r] is set by the
        # postings of the allowed tokens: one segment max, O(postings + n x requirements).
        named = tf.reshape(allow_ns >= 0, [-1])
        pairs = tf.reshape(query_of * self.num_namespaces + allow_ns, [-1])
        required, requirement = tf.unique(tf.boolean_mask(pairs, named))
        count = tf.size(required, out_type=tf.int64)
        slot = tf.tensor_scatter_nd_update(
            tf.fill([batch * width], tf.constant(-1, tf.int64)),
            tf.where(named),
            tf.cast(requirement, tf.int64),
        )
        position, rows = self._rows_of(allow)
        cells = rows * count + tf.gather(slot, position)
        held = tf.math.unsorted_segment_max(tf.ones_like(cells, tf.float32), cells, n * count)
        held = tf.maximum(tf.reshape(held, [n, count]), 0.0)
        owner = tf.one_hot(required // self.num_namespaces, tf.cast(batch, tf.int32))  # [R, batch]
        met = tf.transpose(tf.matmul(held, owner))  # [batch, n]: requirements met
        ok = tf.equal(met, tf.reduce_sum(owner, axis=0)[:, None])
        # Deny and numeric restricts cost a pass over the catalogue each: only when given.
        ok = tf.cond(tf.reduce_any(deny >= 0), lambda: ok & self._not_denied(deny, n), lambda: ok)
        return tf.cond(
            tf.reduce_any(columns >= 0),
            lambda: ok & self._numeric_hold(columns, low, equal, high, value, n),
            lambda: ok,
        )

    def _not_denied(self, deny: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
        """[batch, n]: holds none of the row's denied tokens (any denied token excludes)."""
        batch = tf.shape(deny, out_type=tf.int64)[0]
        position, rows = self._rows_of(deny)
        query = position // tf.shape(deny, out_type=tf.int64)[1]
        hit = tf.math.unsorted_segment_sum(
            tf.ones_like(rows, tf.int32), query * n + rows, batch * n
        )
        return tf.equal(tf.reshape(hit, [batch, n]), 0)

    def _numeric_hold(
        self,
        columns: tf.Tensor,
        low: tf.Tensor,
        equal: tf.Tensor,
        high: tf.Tensor,
        value: tf.Tensor,
        n: tf.Tensor,
    ) -> tf.Tensor:
        """[batch, n]: every numeric restrict of the row holds. NaN (no value) is neither
        less, equal nor greater, so it fails every restrict."""
        batch, restricts = tf.unstack(tf.shape(columns, out_type=tf.int64))
        use = tf.reshape(columns >= 0, [-1])
        values = tf.gather(self.numeric, tf.maximum(tf.reshape(columns, [-1]), 0), axis=1)
        bound = tf.reshape(value, [-1])[None, :]

        def wants(flags: tf.Tensor) -> tf.Tensor:
            return tf.reshape(flags, [-1])[None, :]

        holds = (
            (tf.less(values, bound) & wants(low))
            | (tf.equal(values, bound) & wants(equal))
            | (tf.greater(values, bound) & wants(high))
            | ~use[None, :]
        )
        # Failures counted in float32 and transposed as such: a bool Transpose makes
        # TensorFlow's oneDNN build log an ERROR line on CPUs it does not take for AVX-512
        # ones (and a Cast just before a Transpose is moved after it by Grappler).
        failed = tf.cast(tf.reshape(~holds, [n, batch, restricts]), tf.float32)
        return tf.equal(tf.transpose(tf.reduce_sum(failed, axis=2)), 0.0)

    # --- the search -------------------------------------------------------------------------

    def _search(
        self, embeddings: tf.Tensor, k: tf.Tensor, mask: tf.Tensor, search: Search
    ) -> tuple[tf.Tensor, tf.Tensor]:
        n = tf.shape(mask, out_type=tf.int64)[1]
        passing = tf.reduce_sum(tf.cast(mask, tf.int64), axis=1)  # [batch]
        exact = passing <= tf.maximum(self.exact_max_passing, k)
        share = tf.cast(passing, tf.float64) / tf.cast(n, tf.float64)
        wanted = OVERFETCH * tf.cast(k, tf.float64) / tf.maximum(share, 1e-12)
        # One fetch for the batch: the largest any over-fetched row needs.
        first = tf.reduce_max(tf.where(exact, tf.constant(0.0, tf.float64), wanted))
        first = tf.clip_by_value(tf.cast(tf.math.ceil(first), tf.int64), k, n)

        def fetch(size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            rows, scores = search(embeddings, tf.cast(size, tf.int32))
            rows = tf.reshape(tf.cast(rows, tf.int64), tf.shape(scores))
            # ScaNN pads a search whose leaves hold fewer than `size` points with -inf.
            keep = (rows >= 0) & (rows < n) & tf.math.is_finite(scores)
            keep &= tf.gather(mask, tf.clip_by_value(rows, 0, n - 1), batch_dims=1)
            scores = tf.where(keep, scores, tf.constant(-np.inf, tf.float32))
            return rows, scores, tf.reduce_sum(tf.cast(keep, tf.int64), axis=1)

        def short(kept: tf.Tensor) -> tf.Tensor:
            return ~exact & (kept < k)

        def approximate() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            # Too few passed among the fetched (the filter removed this query's neighbourhood):
            # widen once, by WIDEN ** MAX_ROUNDS; rows still short are scored exactly.
            rows, scores, kept = fetch(first)
            return tf.cond(
                tf.reduce_any(short(kept)),
                lambda: fetch(tf.minimum(first * WIDEN**MAX_ROUNDS, n)),
                lambda: (rows, scores, kept),
            )

        def skipped() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            batch = tf.shape(mask)[0]
            return (
                tf.zeros([batch, 0], tf.int64),
                tf.zeros([batch, 0], tf.float32),
                tf.zeros([batch], tf.int64),
            )

        rows, scores, kept = tf.cond(tf.reduce_all(exact), skipped, approximate)
        rows, scores = _best(rows, scores, k)
        scored = exact | short(kept)
        return tf.cond(
            tf.reduce_any(scored),
            lambda: self._merge_exact(embeddings, k, mask, scored, rows, scores),
            lambda: (rows, scores),
        )

    def _merge_exact(
        self,
        embeddings: tf.Tensor,
        k: tf.Tensor,
        mask: tf.Tensor,
        scored: tf.Tensor,
        rows: tf.Tensor,
        scores: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The best k passing candidates by exact dot product for the `scored` queries."""
        pairs = tf.where(mask & scored[:, None])  # (query, candidate row), query-major
        values = tf.reduce_sum(
            tf.gather(self.embeddings, pairs[:, 1]) * tf.gather(embeddings, pairs[:, 0]), axis=1
        )
        batch = tf.shape(mask, out_type=tf.int64)[0]
        ragged = tf.RaggedTensor.from_value_rowids(values, pairs[:, 0], nrows=batch)
        candidates = tf.RaggedTensor.from_value_rowids(pairs[:, 1], pairs[:, 0], nrows=batch)
        exact_rows, exact_scores = _best(
            candidates.to_tensor(default_value=-1), ragged.to_tensor(default_value=-np.inf), k
        )
        pick = scored[:, None]
        return tf.where(pick, exact_rows, rows), tf.where(pick, exact_scores, scores)


def _best(rows: tf.Tensor, scores: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The k best (row, score) per query, best first; -inf entries become (-1, -inf), and
    rows with fewer than k columns are padded so."""
    width = tf.shape(scores, out_type=tf.int64)[1]
    pad = tf.maximum(k - width, 0)
    scores = tf.pad(scores, [[0, 0], [0, pad]], constant_values=-np.inf)
    rows = tf.pad(rows, [[0, 0], [0, pad]], constant_values=-1)
    top = tf.math.top_k(scores, k=tf.cast(k, tf.int32))
    best = tf.gather(rows, top.indices, batch_dims=1)
    return tf.where(tf.math.is_inf(top.values), tf.constant(-1, tf.int64), best), top.values


def _table(keys: object) -> tf.lookup.StaticHashTable:
    values = list(keys)  # type: ignore[call-overload]
    # An empty table still needs a key: "=" is no namespace, token or numeric name.
    encoded = encode_utf8(values) if values else np.asarray([b"="], dtype=object)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(encoded, tf.string), tf.range(len(encoded), dtype=tf.int64)
        ),
        default_value=-1,
    )
