"""Checks of `retrieve_filtered`'s filter inputs before the model runs (pure Python).

The exported graph refuses a malformed or unknown token or restrict itself (so TF Serving
answers INVALID_ARGUMENT too), but with TensorFlow's assertion text. scann-serve checks
the same rules first, against the attribute schema in the manifest, so its message names
the input, the element and the fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from scann_serving.client.contract import (
    ALLOW,
    ATTRIBUTES_MANIFEST_KEY,
    DENY,
    NUMERIC,
    NUMERIC_RESTRICT_PATTERN,
    TOKEN_SEPARATOR,
)
from scann_serving.server._errors import InvalidArgument

_RESTRICT = re.compile(NUMERIC_RESTRICT_PATTERN)


@dataclass(frozen=True)
class FilterSchema:
    """The namespaces and numeric attributes a version's filters may name."""

    namespaces: tuple[str, ...]
    numeric: tuple[str, ...]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any] | None) -> FilterSchema | None:
        """The schema of the manifest's `attributes` block, None when it has none."""
        block = (manifest or {}).get(ATTRIBUTES_MANIFEST_KEY)
        if not isinstance(block, dict):
            return None
        namespaces = block.get("namespaces") or {}
        numeric = block.get("numeric_attributes") or {}
        return cls(tuple(sorted(map(str, namespaces))), tuple(sorted(map(str, numeric))))


def check_filters(inputs: dict[str, np.ndarray], schema: FilterSchema | None) -> None:
    """Raises InvalidArgument naming the first malformed or unknown token or restrict.

    Without a schema (a version exported before attributes had one) only the syntax is
    checked and the graph judges the names.
    """
    for key in (ALLOW, DENY):
        if key in inputs:
            _check_tokens(key, inputs[key], schema)
    if NUMERIC in inputs:
        _check_restricts(inputs[NUMERIC], schema)


def _texts(array: np.ndarray) -> list[tuple[int, str]]:
    out = []
    for index, value in enumerate(array.ravel().tolist()):
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if text:  # "" pads a row
            out.append((index, text))
    return out


def _check_tokens(key: str, array: np.ndarray, schema: FilterSchema | None) -> None:
    for index, token in _texts(array):
        namespace, separator, _ = token.partition(TOKEN_SEPARATOR)
        if not separator:
            raise InvalidArgument(
                f"input '{key}' element {index} ({token!r:.80}) is not a 'namespace=value' "
                "token; write e.g. 'genre=Comedy', or '' for padding"
            )
        if schema is not None and namespace not in schema.namespaces:
            known = ", ".join(schema.namespaces) or "none"
            raise InvalidArgument(
                f"input '{key}' element {index} ({token!r:.80}) names unknown namespace "
                f"{namespace!r:.40}; this model's namespaces: {known}"
            )


def _check_restricts(array: np.ndarray, schema: FilterSchema | None) -> None:
    for index, text in _texts(array):
        match = _RESTRICT.fullmatch(text)
        if match is None:
            raise InvalidArgument(
                f"input '{NUMERIC}' element {index} ({text!r:.80}) is not a numeric restrict; "
                "write NAME OP NUMBER with OP one of < <= > >= == != (e.g. 'year>=1990')"
            )
        name, _, number = match.groups()
        if not math.isfinite(float(number)):
            raise InvalidArgument(
                f"input '{NUMERIC}' element {index} ({text!r:.80}): the number must be finite"
            )
        if schema is not None and name not in schema.numeric:
            known = ", ".join(schema.numeric) or "none"
            raise InvalidArgument(
                f"input '{NUMERIC}' element {index} ({text!r:.80}) names unknown numeric "
                f"attribute {name!r:.40}; this model's numeric attributes: {known}"
            )
