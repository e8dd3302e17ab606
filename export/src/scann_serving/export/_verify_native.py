"""The native bundle against the SavedModel, in the verification's fresh process.

The child of `_verify` has both loaded from the staged version directory; `check_bundle`
sends the same requests to each and requires the same identifiers (scores within 1e-4):
every warmup request, at least `MIN_HELD_OUT` held-out queries (keys through the query
signatures when the bundle has a lookup tower, embeddings through `search_embedding`
always), unknown keys, exclusions, every k from 1 to max_k and, when the bundle serves
`retrieve_filtered`, filters of the version's own attributes (`_filter_requests`). The first
difference is an error naming the signature and the request, so the export fails and
publishes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import (
    ALLOW,
    ASSETS_EXTRA,
    ATTRIBUTES_DIRNAME,
    DENY,
    EMBEDDING,
    EXCLUDE,
    IDENTIFIERS,
    NUMERIC,
    QUERY,
    RETRIEVE,
    RETRIEVE_FILTERED,
    RETRIEVE_WITH_EXCLUSIONS,
    SCORES,
    SEARCH_EMBEDDING,
    SERVING_DEFAULT,
    TOKEN_SEPARATOR,
    K,
)
from scann_serving.server._bundle import bundle_dir, read_bundle, read_info
from scann_serving.server._native_search import TOWER_STRING, NativeIndex, run_signature

MIN_HELD_OUT = 1000
BATCH = 100
TOLERANCE = 1e-4
#: Catalogues this small are also checked with every candidate excluded.
SMALL_CATALOGUE = 256

#: (signature, inputs) -> (identifiers, scores) as numpy arrays.
Runner = Callable[[str, dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


class BundleMismatch(AssertionError):
    """The bundle answered a request differently from the SavedModel."""


def write_probe(path: Path, keys: np.ndarray, embeddings: np.ndarray) -> None:
    """Stores the held-out keys and embeddings the child checks with (no pickles)."""
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(embeddings, np.float32))
    values = [k.decode() if isinstance(k, bytes) else k for k in np.asarray(keys).tolist()]
    path.with_suffix(".json").write_text(json.dumps(values))


def read_probe(path: Path) -> tuple[list[Any], np.ndarray]:
    """What `write_probe` stored: (keys, float32 embeddings)."""
    keys = json.loads(path.with_suffix(".json").read_text())
    return keys, np.load(path.with_suffix(".npy"), allow_pickle=False)


def check_bundle(
    version_dir: Path,
    savedmodel: Runner,
    warmups: list[tuple[str, dict[str, np.ndarray]]],
    probe: Path,
) -> dict[str, Any]:
    """Compares the bundle with the SavedModel; returns the manifest's verification block.

    Raises:
        BundleMismatch: The first request whose answers differ.
    """
    info = read_info(bundle_dir(version_dir))
    index = read_bundle(bundle_dir(version_dir))
    requests = [(sig, inputs) for sig, inputs in warmups if sig in info.signatures]
    keys, embeddings = read_probe(probe)
    requests += _embedding_requests(embeddings, index)
    if index.table is not None:
        requests += _key_requests(keys, index, info.settings.max_k)
    if RETRIEVE_FILTERED in info.signatures:
        from scann_serving.export._attributes import AttributeTable

        table = AttributeTable.load(version_dir / ASSETS_EXTRA / ATTRIBUTES_DIRNAME)
        sample = next(inputs[QUERY] for sig, inputs in requests if sig == RETRIEVE)
        bands = [band.up_to_k for band in info.settings.bands]
        requests += filter_requests(table, sample, info.settings.k, info.settings.max_k, bands)
    held_out = 0
    for number, (signature, inputs) in enumerate(requests):
        want = savedmodel(signature, inputs)
        got = run_signature(index, signature, inputs)
        _compare(number, signature, want, got)
        # Rows of distinct queries; the k sweeps and filters reuse one small sample.
        if signature not in (RETRIEVE, RETRIEVE_FILTERED):
            held_out += len(inputs[QUERY] if QUERY in inputs else inputs[EMBEDDING])
    return {
        "requests": len(requests),
        "signatures": list(info.signatures),
        "rows_compared": held_out,
        "identical_identifiers": True,
        "score_tolerance": TOLERANCE,
    }


def _compare(
    number: int,
    signature: str,
    want: tuple[np.ndarray, np.ndarray],
    got: tuple[np.ndarray, np.ndarray],
) -> None:
    if want[0].shape != got[0].shape or want[0].tolist() != got[0].tolist():
        rows = [
            i for i in range(min(len(want[0]), len(got[0]))) if list(want[0][i]) != list(got[0][i])
        ]
        row = rows[0] if rows else 0
        raise BundleMismatch(
            f"native bundle request {number} ({signature}) row {row}: identifiers "
            f"{got[0][row][:5].tolist()}..., the SavedModel's {want[0][row][:5].tolist()}..."
        )
    if not np.allclose(want[1], got[1], rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True):
        raise BundleMismatch(
            f"native bundle request {number} ({signature}): scores differ by up to "
            f"{float(np.nanmax(np.abs(want[1] - got[1]))):.3g}"
        )


def _embedding_requests(embeddings: np.ndarray, index: NativeIndex) -> list[Any]:
    rows = _at_least(embeddings, MIN_HELD_OUT)
    singles = [(SEARCH_EMBEDDING, {EMBEDDING: rows[i : i + 1]}) for i in range(4)]
    return singles + [
        (SEARCH_EMBEDDING, {EMBEDDING: rows[i : i + BATCH]}) for i in range(0, len(rows), BATCH)
    ]


def _key_requests(keys: list[Any], index: NativeIndex, max_k: int) -> list[Any]:
    assert index.table is not None
    string = index.table.kind == TOWER_STRING
    pool: list[Any]
    extra: list[Any]
    if string:
        known = list(index.table.keys or {})
        extra = [b"", "\x00unknown-\u00e9".encode(), b"no such key", *_variants(known[:3])]
        pool = [str(k).encode() for k in keys] + known
    else:
        low, count = index.table.min_id, len(index.table.rows)
        pool = [int(k) for k in keys] + list(range(low, low + count))
        extra = []
    queries = _array(_at_least(np.asarray(pool, dtype=object), MIN_HELD_OUT), string)
    requests: list[Any] = [
        (SERVING_DEFAULT, {QUERY: queries[i : i + BATCH]}) for i in range(0, len(queries), BATCH)
    ]
    requests += [(SERVING_DEFAULT, {QUERY: queries[i : i + 1]}) for i in range(4)]
    if extra:
        requests.append((SERVING_DEFAULT, {QUERY: _array(extra + pool[:3], string)}))
    sample = queries[:8]
    requests += [
        (RETRIEVE, {QUERY: sample, K: np.asarray(k, np.int32)}) for k in range(1, max_k + 1)
    ]
    top, _ = run_signature(index, RETRIEVE, {QUERY: sample, K: np.asarray(max_k, np.int32)})
    for width in (1, 3, min(max_k, 2 * index.settings.k)):
        exclude = np.empty((len(sample), width + 1), dtype=object)
        exclude[:, :width] = top[:, :width]
        exclude[:, width] = b"not-an-identifier"
        requests.append((RETRIEVE_WITH_EXCLUSIONS, {QUERY: sample, EXCLUDE: exclude}))
    if index.num_candidates <= SMALL_CATALOGUE:  # the -inf fill; [b, k + n, n] compares
        everything = np.tile(index.identifiers, (2, 1))
        requests.append((RETRIEVE_WITH_EXCLUSIONS, {QUERY: sample[:2], EXCLUDE: everything}))
    return requests


def _variants(keys: list[bytes]) -> list[bytes]:
    """Known keys in another case or with a space: a tower that normalises keys before its
    lookup answers them with known rows, which a table would not."""
    out = []
    for key in keys:
        text = key.decode("utf-8", "replace")
        out += [text.upper().encode(), text.swapcase().encode(), f" {text}".encode()]
    return out


def filter_requests(
    table: Any, queries: np.ndarray, k: int, max_k: int, bands: list[int] | None = None
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """`retrieve_filtered` requests over both paths: filters from the table's own tokens and
    values at several selectivities (from every candidate down to none, so the exact path,
    the over-fetch and the padding all run), deny, numeric restricts, a batch mixing them
    and k = 1, the default k, max_k and each search band's upper k (the filtered search
    grows from the band of the requested k).

    Args:
        table: The version's `AttributeTable`.
        queries: A batch of query keys.
        k: The exported default k.
        max_k: The largest k.
        bands: The search bands' `up_to_k`.
    """
    counts = np.bincount(table.tokens, minlength=len(table.vocabulary))
    order = [str(table.vocabulary[i]) for i in np.argsort(-counts, kind="stable")]
    picks = [order[int(q * (len(order) - 1))] for q in (0.0, 0.25, 0.5, 0.75, 1.0)] if order else []
    namespace = table.namespaces[0] if table.namespaces else ""
    filters: list[tuple[list[str], list[str], list[str]]] = [([], [], [])]
    filters += [([token], [], []) for token in dict.fromkeys(picks)]
    if len(order) > 1:
        filters += [(order[:2], [], []), ([], [order[0]], []), (order[1:3], [order[0]], [])]
    first_namespace = order[0].partition(TOKEN_SEPARATOR)[0] if order else ""
    other = [t for t in order if t.partition(TOKEN_SEPARATOR)[0] != first_namespace]
    if order and other:
        filters.append(([order[0], other[0]], [], []))
    if namespace:
        filters.append(
            ([f"{namespace}{TOKEN_SEPARATOR}\x00no such value"], [], [])
        )  # none pass: padding
    for column, name in enumerate(table.numeric_names):
        values = table.numeric[:, column]
        values = values[~np.isnan(values)]
        if len(values):
            low, mid, high = (float(np.quantile(values, q)) for q in (0.1, 0.5, 0.99))
            filters += [
                ([], [], [f"{name}>={mid:.17g}"]),
                ([], [], [f"{name}<{low:.17g}", f"{name}!={float(values[0]):.17g}"]),
                (picks[1:2], [], [f"{name}>{high:.17g}"]),
                ([], [], [f"{name}=={float(values[0]):.17g}"]),
            ]
    requests = []
    for want in sorted({1, k, max_k, *(b for b in bands or [] if b <= max_k)}):
        for allow, deny, numeric in filters:
            rows = [(allow, deny, numeric)] * len(queries)
            requests.append((RETRIEVE_FILTERED, _filter_inputs(queries, want, rows)))
        mixed = [filters[i % len(filters)] for i in range(len(queries))]
        requests.append((RETRIEVE_FILTERED, _filter_inputs(queries, want, mixed)))
    return requests


def _filter_inputs(
    queries: np.ndarray, k: int, rows: list[tuple[list[str], list[str], list[str]]]
) -> dict[str, np.ndarray]:
    def matrix(field: int) -> np.ndarray:
        width = max([1, *(len(row[field]) for row in rows)])
        out = np.full((len(rows), width), b"", dtype=object)
        for i, row in enumerate(rows):
            out[i, : len(row[field])] = [v.encode() for v in row[field]]
        return out

    return {
        QUERY: queries,
        K: np.asarray(k, np.int32),
        ALLOW: matrix(0),
        DENY: matrix(1),
        NUMERIC: matrix(2),
    }


def _array(values: list[Any] | np.ndarray, string: bool) -> np.ndarray:
    if string:
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out
    return np.asarray(list(values), dtype=np.int64)


def _at_least(values: np.ndarray, n: int) -> np.ndarray:
    if len(values) == 0 or len(values) >= n:
        return values
    return np.concatenate([values] * (-(-n // len(values))))[:n]


def as_outputs(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A signature's output dict (tensors) as (identifiers, scores) numpy arrays."""
    return np.asarray(result[IDENTIFIERS].numpy(), dtype=object), result[SCORES].numpy()
