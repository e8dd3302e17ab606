"""The candidate attributes' plain files (`assets.extra/attributes/`), read without TensorFlow.

This module is the one definition of the files: the export writes them through
`write_layout` (`scann_serving.export._attributes.AttributeTable.save`) and reads them back
through `read_layout`, and an `AttributeLayout` checks its arrays against each other
whoever builds it. The native backend loads one into an `AttributeIndex` whose `passing`
computes which candidates pass one query's filter, by the rules of the exported graph
(`export._filtering`):

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

    def __post_init__(self) -> None:
        """Raises ValueError when the layout is of another format or its parts disagree
        (a filter over such arrays would pick wrong rows instead of failing)."""
        schema = self.schema
        if schema.get("format") != LAYOUT_FORMAT:
            raise ValueError(f"attribute layout format {schema.get('format')!r}, not 1")
        n, nnz = len(self.offsets) - 1, len(self.tokens)
        vocabulary, names = len(schema["vocabulary"]), len(schema["numeric_names"])
        if self.offsets.ndim != 1 or n < 0 or self.offsets[0] != 0 or self.offsets[-1] != nnz:
            raise ValueError(f"offsets of shape {self.offsets.shape} do not span {nnz} tokens")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets decrease")
        if schema.get("num_candidates", n) != n:
            raise ValueError(f"{n} candidates in offsets, {schema['num_candidates']} in schema")
        if nnz and (self.tokens.min() < 0 or self.tokens.max() >= vocabulary):
            raise ValueError(f"token ids outside the vocabulary of {vocabulary}")
        if len(self.token_namespace) != vocabulary:
            raise ValueError(
                f"{len(self.token_namespace)} token namespaces for {vocabulary} tokens"
            )
        if self.numeric.shape != (n, names):
            raise ValueError(
                f"numeric of shape {self.numeric.shape} for {n} candidates and {names} names"
            )


def read_layout(directory: Path) -> AttributeLayout:
    """Reads `schema.json` and the `.npy` arrays (never pickles).

    Raises:
        ValueError: The files are not a layout `write_layout` wrote (the message names the
            directory and the fix).
    """
    try:
        schema = json.loads((directory / SCHEMA_FILE).read_text(encoding="utf-8"))
        offsets, tokens, token_ns, numeric = (
            np.load(directory / name, allow_pickle=False) for name in LAYOUT_FILES
        )
        return AttributeLayout(schema, offsets, tokens, token_ns, numeric)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"candidate attributes in {directory} are unreadable ({exc}); re-export the version"
        ) from exc


def write_layout(directory: Path, layout: AttributeLayout) -> None:
    """Writes what `read_layout` reads: the `.npy` arrays and `schema.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = (layout.offsets, layout.tokens, layout.token_namespace, layout.numeric)
    for name, array in zip(LAYOUT_FILES, arrays, strict=True):
        np.save(directory / name, array, allow_pickle=False)
    text = json.dumps(layout.schema, ensure_ascii=False, indent=1)
    (directory / SCHEMA_FILE).write_text(text + "\n", encoding="utf-8")


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
        layout: What `read_layout` read (checked when it was built).
    """

    def __init__(self, layout: AttributeLayout) -> None:
        schema = layout.schema
        vocabulary = [str(t).encode() for t in schema["vocabulary"]]
        self.num_candidates = len(layout.offsets) - 1
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
