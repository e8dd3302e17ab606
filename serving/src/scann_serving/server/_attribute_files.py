"""The candidate attributes' plain files (`assets.extra/attributes/`), read without TensorFlow.

The export writes them (`scann_serving.export._attributes.AttributeTable.save`) and reads
them back through `read_layout`; the native backend loads them into an `AttributeIndex`
whose `passing` computes which candidates pass one query's filter, by the rules of the
exported graph (`export._filtering`):

- `allow`: for every namespace named, at least one of its allowed tokens (OR within a
  namespace, AND across); an allowed value no candidate has matches nothing;
- `deny`: none of the denied tokens;
- `numeric`: every restrict holds; NaN (no value) is neither less, equal nor greater, so it
  fails every restrict, `!=` included.

The cost is that of the graph: the inverted lists of the named tokens (built once at load)
plus one pass over the catalogue per namespace, deny list and restrict, all in numpy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import NUMERIC_RESTRICT_PATTERN, TOKEN_SEPARATOR

#: Files of the plain layout inside `assets.extra/attributes/` (plus `schema.json`).
LAYOUT_FILES = ("offsets.npy", "tokens.npy", "token_namespace.npy", "numeric.npy")
SCHEMA_FILE = "schema.json"
LAYOUT_FORMAT = 1

_RESTRICT = re.compile(NUMERIC_RESTRICT_PATTERN)
_SEPARATOR = TOKEN_SEPARATOR.encode()
_COMPARE = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


@dataclass(frozen=True)
class AttributeLayout:
    """The arrays of the plain layout, as stored (see `export._attributes` for the table).

    Attributes:
        schema: `schema.json`: format, namespaces, vocabulary, numeric_names.
        offsets: int64 `[n + 1]`, CSR row starts into `tokens`.
        tokens: int32 `[nnz]`, token ids per candidate.
        token_namespace: int32 `[T]`, the namespace of each token.
        numeric: float64 `[n, M]`, NaN where a candidate has no value.
    """

    schema: dict[str, Any]
    offsets: np.ndarray
    tokens: np.ndarray
    token_namespace: np.ndarray
    numeric: np.ndarray


def read_layout(directory: Path) -> AttributeLayout:
    """Reads `schema.json` and the `.npy` arrays (never pickles)."""
    schema = json.loads((directory / SCHEMA_FILE).read_text(encoding="utf-8"))
    offsets, tokens, token_ns, numeric = (
        np.load(directory / name, allow_pickle=False) for name in LAYOUT_FILES
    )
    return AttributeLayout(schema, offsets, tokens, token_ns, numeric)


def postings(
    offsets: np.ndarray, tokens: np.ndarray, vocabulary_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The inverted (CSC) form: token `t` is held by rows `rows[starts[t]:starts[t+1]]`."""
    rows = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    order = np.argsort(tokens, kind="stable")
    counts = np.bincount(tokens, minlength=vocabulary_size)
    starts = np.zeros(vocabulary_size + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts, rows[order]


class AttributeIndex:
    """The attributes of a served version, indexed for per-query passing sets.

    Args:
        layout: What `read_layout` read.

    Raises:
        ValueError: The layout is of another format or its arrays disagree.
    """

    def __init__(self, layout: AttributeLayout) -> None:
        schema = layout.schema
        if schema.get("format") != LAYOUT_FORMAT:
            raise ValueError(f"attribute layout format {schema.get('format')!r}, not 1")
        vocabulary = [str(t).encode() for t in schema["vocabulary"]]
        self.num_candidates = len(layout.offsets) - 1
        if layout.numeric.shape[0] != self.num_candidates:
            raise ValueError(
                f"{layout.numeric.shape[0]} numeric rows for {self.num_candidates} candidates"
            )
        # Keys are the UTF-8 bytes the request carries, as the graph's hash tables match them.
        self.namespaces = {str(ns).encode(): i for i, ns in enumerate(schema["namespaces"])}
        self.token_ids = {token: i for i, token in enumerate(vocabulary)}
        self.numeric_columns = {str(name): j for j, name in enumerate(schema["numeric_names"])}
        self.numeric = np.asarray(layout.numeric, np.float64)
        self.starts, self.rows = postings(layout.offsets, layout.tokens, len(vocabulary))

    def passing(
        self, allow: Iterable[Any], deny: Iterable[Any], numeric: Iterable[Any]
    ) -> np.ndarray:
        """bool `[n]`: the candidates that pass one query's filter ("" entries are padding).

        The inputs were checked (`_filters.check_filters`); a token or restrict this table
        does not know raises ValueError rather than being ignored.
        """
        ok = np.ones(self.num_candidates, bool)
        required: dict[bytes, list[int]] = {}
        for token in _texts(allow):
            namespace = token.partition(_SEPARATOR)[0]
            if namespace not in self.namespaces:
                raise ValueError(f"allow token {token!r} names an unknown namespace")
            required.setdefault(namespace, []).append(self.token_ids.get(token, -1))
        for ids in required.values():
            ok &= self._holding(ids)
        denied = [self.token_ids.get(token, -1) for token in _texts(deny)]
        if any(t >= 0 for t in denied):
            ok &= ~self._holding(denied)
        for text in _texts(numeric):
            ok &= self._restrict(text.decode())
        return ok

    def _holding(self, ids: list[int]) -> np.ndarray:
        """bool `[n]`: candidates holding any of the token ids (-1: a value nobody has)."""
        hit = np.zeros(self.num_candidates, bool)
        for t in ids:
            if t >= 0:
                hit[self.rows[self.starts[t] : self.starts[t + 1]]] = True
        return hit

    def _restrict(self, text: str) -> np.ndarray:
        match = _RESTRICT.fullmatch(text)
        if match is None or match.group(1) not in self.numeric_columns:
            raise ValueError(f"numeric restrict {text!r} is malformed or names no attribute")
        name, op, value = match.groups()
        column = self.numeric[:, self.numeric_columns[name]]
        with np.errstate(invalid="ignore"):
            result: np.ndarray = _COMPARE[op](column, float(value)) & ~np.isnan(column)
        return result


def _texts(values: Iterable[Any]) -> list[bytes]:
    out = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    return [v for v in out if v]
