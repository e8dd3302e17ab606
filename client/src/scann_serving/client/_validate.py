"""Argument checks that run before a call, with messages that say what to change."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scann_serving.client._errors import InvalidRequest, ProtocolError
from scann_serving.client._types import ModelMetadata, Signature

QueryKey = str | bytes | int
Queries = QueryKey | Sequence[QueryKey] | np.ndarray
Exclusions = Sequence[str | bytes] | Sequence[Sequence[str | bytes]]


def query_keys(queries: Queries) -> list[str | bytes]:
    """The query keys as a non-empty batch (a single key becomes a batch of one)."""
    if isinstance(queries, str | bytes | int | np.integer | np.str_):
        queries = [queries]
    keys: list[str | bytes] = []
    for key in np.asarray(queries, dtype=object).ravel().tolist():
        if isinstance(key, bool) or not isinstance(key, str | bytes | int):
            raise InvalidRequest(f"query key {key!r}: pass str, bytes or int keys")
        keys.append(str(key) if isinstance(key, int) else key)
    if not keys:
        raise InvalidRequest("queries is empty: pass at least one query key")
    return keys


#: The integer dtypes a `query` input may have: numpy dtype and the range of ids it holds.
INTEGER_QUERY_DTYPES: dict[str, type[np.integer[Any]]] = {
    "DT_INT64": np.int64,
    "DT_INT32": np.int32,
}
_DECIMAL = re.compile(r"[+-]?[0-9]+", re.ASCII)


def integer_keys(queries: Queries, dtype: str, meta: ModelMetadata) -> np.ndarray:
    """Query keys as the ids of a model whose query tower takes integers.

    Ints and decimal strings (`42`, `"42"`, `b"42"`) are accepted; anything else, and ids
    outside the dtype or the ids the tower knows (the manifest's `query_key`), is refused.
    """
    np_dtype = INTEGER_QUERY_DTYPES[dtype]
    info = np.iinfo(np_dtype)
    low, high = int(info.min), int(info.max)
    block = meta.manifest.get("query_key")
    if isinstance(block, dict):
        low = _whole(block.get("min_id"), low)
        high = _whole(block.get("max_id"), high)
    if isinstance(queries, str | bytes | int | float | np.generic):
        queries = [queries]  # type: ignore[list-item]
    ids: list[int] = []
    for key in np.asarray(queries, dtype=object).ravel().tolist():
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if isinstance(text, str) and _DECIMAL.fullmatch(text):
            key_id = int(text)
        elif isinstance(key, int | np.integer) and not isinstance(key, bool):
            key_id = int(key)
        else:
            raise InvalidRequest(
                f"query key {key!r}: model {meta.model_name!r} takes integer ids "
                f"({dtype}); pass ints or decimal strings such as '42'"
            )
        if not low <= key_id <= high:
            raise InvalidRequest(
                f"query key {key!r} is outside the ids model {meta.model_name!r} knows "
                f"({low}..{high}); pass a known id"
            )
        ids.append(key_id)
    if not ids:
        raise InvalidRequest("queries is empty: pass at least one query key")
    return np.asarray(ids, dtype=np_dtype)


def _whole(value: Any, default: int) -> int:
    # A Struct holds every number as a double: 942.0 is the id 942.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def check_k(k: int, meta: ModelMetadata) -> int:
    """`k` itself if it is an int within 1..max_k (max_k when the server exposes it)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidRequest(f"k={k!r}: pass a positive int")
    if k < 1:
        raise InvalidRequest(f"k={k}: k must be at least 1")
    if meta.max_k is not None and k > meta.max_k:
        raise InvalidRequest(
            f"k={k} is above model {meta.model_name!r}'s max_k ({meta.max_k}); "
            "lower k or re-export the model with a larger --max-k"
        )
    return int(k)


def check_cut(k: int, meta: ModelMetadata, signature: str) -> int:
    """A k for a signature that returns the exported default k: cut, never grow."""
    k = check_k(k, meta)
    if meta.default_k is not None and k > meta.default_k:
        raise InvalidRequest(
            f"k={k}: signature {signature!r} returns the exported k ({meta.default_k}); "
            "pass k <= that, or use retrieve() without exclusions for a larger k"
        )
    return k


def exclusion_rows(exclude: Exclusions, batch: int) -> list[list[str | bytes]]:
    """Per-query exclusion lists: one flat list applies to every query."""
    if isinstance(exclude, str | bytes):
        raise InvalidRequest("exclude is a single string: pass a list of identifiers")
    items = list(exclude)
    if all(isinstance(item, str | bytes) for item in items):
        return [list(items) for _ in range(batch)]  # type: ignore[arg-type]
    rows = [[item] if isinstance(item, str | bytes) else list(item) for item in items]
    if len(rows) != batch:
        raise InvalidRequest(
            f"exclude has {len(rows)} rows for {batch} queries: pass one list per query "
            "or one flat list for all of them"
        )
    return rows  # type: ignore[return-value]


def embedding_batch(embeddings: Any, meta: ModelMetadata) -> np.ndarray:
    """The embeddings as a finite float32 `[batch, dim]` array of the model's dim."""
    try:
        array = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"embeddings: need numbers of shape [batch, dim] ({exc})") from exc
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise InvalidRequest(
            f"embeddings has shape {list(array.shape)}: pass a non-empty [batch, dim] array"
        )
    dim = meta.embedding_dim
    if dim is not None and array.shape[1] != dim:
        raise InvalidRequest(
            f"embeddings have dim {array.shape[1]} but model {meta.model_name!r} expects "
            f"{dim}: embed with the same query tower the model was exported with"
        )
    if not np.isfinite(array).all():
        raise InvalidRequest("embeddings contain NaN or Inf: send finite values")
    return array


def signature(meta: ModelMetadata, name: str) -> Signature:
    """The named signature, or an error listing what the model serves."""
    if name not in meta.signatures:
        raise InvalidRequest(
            f"model {meta.model_name!r} has no signature {name!r} (it serves "
            f"{sorted(meta.signatures)}); re-export it with scann-export"
        )
    return meta.signatures[name]


def input_name(sig: Signature, preferred: str, dtype: str, rank: int) -> str:
    """The input called `preferred`, else the only input of that dtype and rank."""
    if preferred in sig.inputs:
        return preferred
    matches = [
        s.name
        for s in sig.inputs.values()
        if s.dtype == dtype and (s.shape is None or len(s.shape) == rank)
    ]
    if len(matches) != 1:
        raise ProtocolError(
            f"signature {sig.name!r} has no input {preferred!r} ({dtype}, rank {rank}); "
            f"its inputs are {sorted(sig.inputs)}"
        )
    return matches[0]
