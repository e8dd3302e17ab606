"""Candidate attributes: token namespaces and numeric columns, and the filter over them.

Two shapes:

- `CandidateAttributes`: what a source carries, keyed by identifier (a file given with
  `--candidate-attributes`, the GroupLens genres and years, the synthetic ones);
- `AttributeTable`: the same aligned with the catalogue's rows, in the layout the exported
  graph, the plain files under `assets.extra/attributes/` and any other backend share:

  ========================  =========================================================
  ``namespaces``            sorted namespace names, ``[S]``
  ``vocabulary``            every token as ``"namespace=value"``, sorted, ``[T]``
  ``token_namespace``       int32 ``[T]``: the namespace of each token
  ``offsets``, ``tokens``   CSR: candidate ``i`` has the token ids
                            ``tokens[offsets[i]:offsets[i+1]]`` (sorted, distinct);
                            int64 ``[n + 1]`` and int32 ``[nnz]``
  ``numeric_names``         sorted numeric attribute names, ``[M]``
  ``numeric``               float64 ``[n, M]``; NaN where a candidate has no value
  ========================  =========================================================

`grouplens_attributes` and `synthetic_attributes` build the datasets' own (genre, year).

The filter (`AttributeTable.passes`, numpy; the graph in `_filtering` computes the same):
a candidate passes when, for every namespace named in `allow`, it has at least one of the
allowed tokens of that namespace (OR within a namespace, AND across), it has none of the
`deny` tokens, and every numeric restrict holds on its value (a missing value fails).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import (
    ALLOW,
    DENY,
    NUMERIC_RESTRICT_PATTERN,
    TOKEN_SEPARATOR,
)

# The plain layout is the server's: its reader, writer and checks (the native backend loads
# it without TensorFlow), so the two packages cannot drift apart on the files.
from scann_serving.server._attribute_files import (
    LAYOUT_FORMAT,
    AttributeLayout,
    postings,
    read_layout,
    write_layout,
)

#: The genres of the synthetic catalogue (MovieLens's most common ones).
SYNTHETIC_GENRES = (
    "Action",
    "Adventure",
    "Comedy",
    "Crime",
    "Drama",
    "Horror",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "Western",
)
# "(1995)", and the ranges of series: "(2004-2009)", "(2004\u20132009)".
_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_RESTRICT = re.compile(NUMERIC_RESTRICT_PATTERN)
_COMPARE = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


class FilterError(ValueError):
    """A filter names an unknown namespace or is malformed; the message names the input."""


@dataclass(frozen=True)
class CandidateAttributes:
    """Attributes of some candidates, keyed by identifier (not yet aligned to a catalogue).

    Attributes:
        identifiers: Candidate identifiers, str `[r]` (distinct).
        tokens: Namespace -> per identifier, its values in that namespace.
        numeric: Name -> float64 `[r]`, NaN where a candidate has no value.
        source: What the attributes came from, for the manifest.
    """

    identifiers: np.ndarray
    tokens: Mapping[str, Sequence[Sequence[str]]] = field(default_factory=dict)
    numeric: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        for name in [*self.tokens, *self.numeric]:
            if not name or TOKEN_SEPARATOR in name or _RESTRICT.fullmatch(f"{name}==0") is None:
                raise ValueError(
                    f"attribute column {name!r}: names must be non-empty, without spaces or "
                    f"any of '=<>!'; rename the column"
                )
        clash = set(self.tokens) & set(self.numeric)
        if clash:
            raise ValueError(f"attribute {sorted(clash)[0]!r} is both a namespace and numeric")

    def align(self, identifiers: np.ndarray) -> AttributeTable:
        """The table over `identifiers` (catalogue order); candidates not here get nothing."""
        row_of = {str(i): r for r, i in enumerate(self.identifiers)}
        rows = np.asarray([row_of.get(str(i), -1) for i in identifiers], dtype=np.int64)
        namespaces = tuple(sorted(self.tokens))
        values = sorted(
            {
                f"{ns}{TOKEN_SEPARATOR}{v}"
                for ns in namespaces
                for cell in self.tokens[ns]
                for v in cell
            }
        )
        vocabulary = np.asarray(values, dtype=object)
        token_id = {t: i for i, t in enumerate(values)}
        per_row: list[list[int]] = []
        for r in rows.tolist():
            ids: set[int] = set()
            if r >= 0:
                for ns in namespaces:
                    ids.update(token_id[f"{ns}{TOKEN_SEPARATOR}{v}"] for v in self.tokens[ns][r])
            per_row.append(sorted(ids))
        names = tuple(sorted(self.numeric))
        numeric = np.full((len(rows), len(names)), np.nan)
        known = rows >= 0
        for j, name in enumerate(names):
            numeric[known, j] = np.asarray(self.numeric[name], dtype=np.float64)[rows[known]]
        return AttributeTable.build(namespaces, vocabulary, per_row, names, numeric, self.source)


@dataclass(frozen=True)
class AttributeTable:
    """Attributes aligned with the catalogue's rows (the layout in the module docstring)."""

    namespaces: tuple[str, ...]
    vocabulary: np.ndarray
    token_namespace: np.ndarray
    offsets: np.ndarray
    tokens: np.ndarray
    numeric_names: tuple[str, ...]
    numeric: np.ndarray
    source: str = ""

    @classmethod
    def build(
        cls,
        namespaces: tuple[str, ...],
        vocabulary: np.ndarray,
        per_row: Sequence[Sequence[int]],
        numeric_names: tuple[str, ...],
        numeric: np.ndarray,
        source: str = "",
    ) -> AttributeTable:
        """A table from per-candidate token id lists."""
        ns_index = {ns: i for i, ns in enumerate(namespaces)}
        token_ns = [ns_index[str(t).split(TOKEN_SEPARATOR, 1)[0]] for t in vocabulary]
        lengths = np.fromiter((len(r) for r in per_row), dtype=np.int64, count=len(per_row))
        offsets = np.zeros(len(per_row) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = [t for r in per_row for t in r]
        return cls(
            namespaces=namespaces,
            vocabulary=np.asarray(vocabulary, dtype=object),
            token_namespace=np.asarray(token_ns, dtype=np.int32),
            offsets=offsets,
            tokens=np.asarray(flat, dtype=np.int32),
            numeric_names=numeric_names,
            numeric=np.asarray(numeric, dtype=np.float64).reshape(len(per_row), len(numeric_names)),
            source=source,
        )

    @property
    def num_candidates(self) -> int:
        """Rows of the table (the catalogue size)."""
        return len(self.offsets) - 1

    def tile(self, copies: int) -> AttributeTable:
        """The table of a catalogue augmented with `copies` copies (each inherits its original)."""
        n, reps = self.num_candidates, copies + 1
        nnz = len(self.tokens)
        offsets = np.concatenate(
            [self.offsets[:-1] + j * nnz for j in range(reps)] + [np.asarray([reps * nnz])]
        )
        return AttributeTable(
            self.namespaces,
            self.vocabulary,
            self.token_namespace,
            offsets.astype(np.int64),
            np.tile(self.tokens, reps),
            self.numeric_names,
            np.tile(self.numeric, (reps, 1)) if n else self.numeric,
            self.source,
        )

    def postings(self) -> tuple[np.ndarray, np.ndarray]:
        """The inverted (CSC) form: token `t` is held by rows `rows[starts[t]:starts[t+1]]`."""
        return postings(self.offsets, self.tokens, len(self.vocabulary))

    def schema(self) -> dict[str, Any]:
        """The manifest's `attributes` block: namespaces, token counts, numeric ranges."""
        counts = np.bincount(self.tokens, minlength=len(self.vocabulary))
        namespaces = {}
        for i, ns in enumerate(self.namespaces):
            mine = self.token_namespace == i
            namespaces[ns] = {
                "tokens": int(mine.sum()),
                "assignments": int(counts[mine].sum()),
                "top": _top_tokens(self.vocabulary[mine], counts[mine]),
            }
        numeric = {}
        for j, name in enumerate(self.numeric_names):
            column = self.numeric[:, j]
            have = column[~np.isnan(column)]
            numeric[name] = {
                "min": float(have.min()) if len(have) else None,
                "max": float(have.max()) if len(have) else None,
                "missing": int(len(column) - len(have)),
            }
        with_tokens = int((np.diff(self.offsets) > 0).sum())
        return {
            "source": self.source,
            "candidates_with_tokens": with_tokens,
            "namespaces": namespaces,
            "numeric_attributes": numeric,
        }

    def layout(self) -> AttributeLayout:
        """The server's plain layout of this table (what `save` writes, the native backend's
        `AttributeIndex` input); checked as it is built."""
        schema = {
            "format": LAYOUT_FORMAT,
            "num_candidates": self.num_candidates,
            "namespaces": list(self.namespaces),
            "vocabulary": [str(t) for t in self.vocabulary],
            "numeric_names": list(self.numeric_names),
        }
        return AttributeLayout(
            schema, self.offsets, self.tokens, self.token_namespace, self.numeric
        )

    def save(self, directory: Path) -> None:
        """Writes the plain layout: the `.npy` arrays and `schema.json` (vocabulary included)."""
        write_layout(directory, self.layout())

    @classmethod
    def load(cls, directory: Path) -> AttributeTable:
        """Reads what `save` wrote (through the server's reader and its checks).

        Raises:
            ValueError: The files are missing or disagree (the message names the directory).
        """
        layout = read_layout(directory)
        schema = layout.schema
        return cls(
            tuple(schema["namespaces"]),
            np.asarray(schema["vocabulary"], dtype=object),
            layout.token_namespace,
            layout.offsets,
            layout.tokens,
            tuple(schema["numeric_names"]),
            layout.numeric,
        )

    def parse(
        self, allow: Iterable[str] = (), deny: Iterable[str] = (), numeric: Iterable[str] = ()
    ) -> FilterSpec:
        """One query's filter; "" entries are padding.

        Raises:
            FilterError: A token without '=', an unknown namespace, a malformed restrict or
                an unknown numeric attribute (the message names it).
        """
        token_id = {str(t): i for i, t in enumerate(self.vocabulary)}
        allowed: dict[str, set[int]] = {}
        for token in _texts(allow):
            ns = self._namespace(ALLOW, token)
            allowed.setdefault(ns, set()).add(token_id.get(token, -1))
        denied = {token_id.get(t, -1) for t in _texts(deny) if self._namespace(DENY, t)}
        restricts = []
        for text in _texts(numeric):
            match = _RESTRICT.fullmatch(text)
            if match is None:
                raise FilterError(
                    f"numeric restrict {text!r} is malformed; write NAME OP NUMBER with OP one "
                    "of < <= > >= == !=, e.g. 'year>=1990'"
                )
            name, op, value = match.groups()
            if name not in self.numeric_names:
                raise FilterError(
                    f"numeric restrict {text!r} names unknown attribute {name!r}; this model "
                    f"has {list(self.numeric_names) or 'no numeric attributes'}"
                )
            if not math.isfinite(float(value)):
                raise FilterError(f"numeric restrict {text!r}: the number must be finite")
            restricts.append((self.numeric_names.index(name), op, float(value)))
        return FilterSpec(
            {ns: frozenset(ids) for ns, ids in allowed.items()}, frozenset(denied), tuple(restricts)
        )

    def _namespace(self, field_name: str, token: str) -> str:
        ns, sep, _ = token.partition(TOKEN_SEPARATOR)
        if not sep:
            raise FilterError(
                f"{field_name} token {token!r} is malformed; write 'namespace=value', "
                "e.g. 'genre=Comedy'"
            )
        if ns not in self.namespaces:
            raise FilterError(
                f"{field_name} token {token!r} names unknown namespace {ns!r}; this model has "
                f"{list(self.namespaces) or 'no token namespaces'}"
            )
        return ns

    def passes(self, spec: FilterSpec) -> np.ndarray:
        """bool `[n]`: which candidates pass `spec` (the reference implementation)."""
        n = self.num_candidates
        rows = np.repeat(np.arange(n), np.diff(self.offsets))
        ok = np.ones(n, bool)
        for ids in spec.allow.values():
            hit = np.isin(self.tokens, np.fromiter(ids, np.int64))
            ok &= np.bincount(rows[hit], minlength=n) > 0
        if spec.deny:
            hit = np.isin(self.tokens, np.fromiter(spec.deny, np.int64))
            ok &= np.bincount(rows[hit], minlength=n) == 0
        for column, op, value in spec.numeric:
            with np.errstate(invalid="ignore"):
                ok &= _COMPARE[op](self.numeric[:, column], value) & ~np.isnan(
                    self.numeric[:, column]
                )
        return ok


@dataclass(frozen=True)
class FilterSpec:
    """One query's parsed filter: allowed token ids per namespace (-1: a value no candidate
    has), denied token ids, and (column, operator, value) numeric restricts."""

    allow: Mapping[str, frozenset[int]]
    deny: frozenset[int]
    numeric: tuple[tuple[int, str, float], ...]


def _texts(values: Iterable[Any]) -> list[str]:
    out = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    return [v for v in out if v]


def _top_tokens(vocabulary: np.ndarray, counts: np.ndarray, limit: int = 20) -> dict[str, int]:
    order = np.argsort(-counts, kind="stable")[:limit]
    return {str(vocabulary[i]): int(counts[i]) for i in order}


def year_from_title(title: str) -> float:
    """The release year at the end of a MovieLens title ("Toy Story (1995)"), else NaN."""
    match = _YEAR_IN_TITLE.search(title)
    return float(match.group(1)) if match else float("nan")


def grouplens_attributes(
    titles: Sequence[str] | np.ndarray,
    genres: Sequence[Sequence[str]] | None,
    years: Sequence[float] | None = None,
    *,
    source: str,
) -> CandidateAttributes:
    """Genres (when the release has them) and the release year of each movie title."""
    ids = np.asarray(list(titles), dtype=object)
    year = np.asarray(
        list(years) if years is not None else [year_from_title(t) for t in ids], dtype=np.float64
    )
    missing = np.isnan(year)
    if missing.any():  # e.g. an ml-100k release date left empty: the title may still say
        year[missing] = [year_from_title(t) for t in ids[missing]]
    tokens = {"genre": [tuple(g) for g in genres]} if genres is not None else {}
    return CandidateAttributes(ids, tokens, {"year": year}, source=source)


def synthetic_attributes(titles: Sequence[str] | np.ndarray, seed: int) -> CandidateAttributes:
    """One to three genres per synthetic title (own random stream) and the title's year."""
    rng = np.random.default_rng([seed, 1])
    genres = []
    for _ in titles:
        count = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        picks = rng.choice(len(SYNTHETIC_GENRES), size=count, replace=False)
        genres.append(tuple(SYNTHETIC_GENRES[i] for i in sorted(picks)))
    return grouplens_attributes(titles, genres, source="synthetic")
