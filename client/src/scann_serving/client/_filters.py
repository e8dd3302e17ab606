"""`retrieve(..., allow=, deny=, where=)`: the filter arguments as `retrieve_filtered` inputs.

The semantics are the model's (docs/ARCHITECTURE.md): allowed values are OR-ed within a
namespace and AND-ed across namespaces, any denied value excludes a candidate, and every
`where` restrict must hold (a candidate without that numeric attribute fails it). One
filter applies to every query of the call. The checks here only catch what can be caught
before a call: the syntax, and the names when the server shares the model's manifest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scann_serving.client._errors import InvalidRequest
from scann_serving.client._types import ModelMetadata
from scann_serving.client.contract import (
    ATTRIBUTES_MANIFEST_KEY,
    NUMERIC_RESTRICT_PATTERN,
    TOKEN_SEPARATOR,
)

#: `allow` / `deny`: {"genre": ["Comedy", "Drama"]} (or "Comedy"), or tokens "genre=Comedy".
Tokens = Mapping[str, str | Sequence[str]] | Sequence[str]
#: `where`: "year>=1990" or several restricts, all of which must hold.
Restricts = str | Sequence[str]

_RESTRICT = re.compile(NUMERIC_RESTRICT_PATTERN)


def tokens(argument: str, value: Tokens | None, meta: ModelMetadata) -> list[str]:
    """`allow` or `deny` as "namespace=value" tokens, checked against the model's schema."""
    if value is None:
        return []
    out: list[str] = []
    if isinstance(value, Mapping):
        for namespace, values in value.items():
            if not isinstance(namespace, str) or not namespace or TOKEN_SEPARATOR in namespace:
                raise InvalidRequest(
                    f"{argument}: namespace {namespace!r} must be a non-empty str without '='"
                )
            items = [values] if isinstance(values, str) else list(values)
            for item in items:
                if not isinstance(item, str):
                    raise InvalidRequest(f"{argument}[{namespace!r}]: values are str, not {item!r}")
                out.append(f"{namespace}{TOKEN_SEPARATOR}{item}")
    elif isinstance(value, str | bytes):
        raise InvalidRequest(
            f"{argument}={value!r}: pass a mapping such as {{'genre': ['Comedy']}} "
            "or a list of 'namespace=value' tokens"
        )
    else:
        for item in value:
            if not isinstance(item, str) or TOKEN_SEPARATOR not in item:
                raise InvalidRequest(
                    f"{argument} token {item!r} is not 'namespace=value'; e.g. 'genre=Comedy'"
                )
            out.append(item)
    known = _schema(meta, "namespaces")
    for token in out:
        namespace = token.split(TOKEN_SEPARATOR, 1)[0]
        if known is not None and namespace not in known:
            raise InvalidRequest(
                f"{argument} names unknown namespace {namespace!r}; model "
                f"{meta.model_name!r} has: {', '.join(sorted(known)) or 'none'}"
            )
    return out


def restricts(value: Restricts | None, meta: ModelMetadata) -> list[str]:
    """`where` as numeric restricts "NAME OP NUMBER", checked against the model's schema."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    known = _schema(meta, "numeric_attributes")
    for item in items:
        match = _RESTRICT.fullmatch(item) if isinstance(item, str) else None
        if match is None or not math.isfinite(float(match.group(3))):
            raise InvalidRequest(
                f"where={item!r}: write NAME OP NUMBER with OP one of < <= > >= == != "
                "(e.g. 'year>=1990')"
            )
        if known is not None and match.group(1) not in known:
            raise InvalidRequest(
                f"where={item!r} names unknown numeric attribute {match.group(1)!r}; model "
                f"{meta.model_name!r} has: {', '.join(sorted(known)) or 'none'}"
            )
    return list(items)


def _schema(meta: ModelMetadata, part: str) -> set[str] | None:
    block: Any = meta.manifest.get(ATTRIBUTES_MANIFEST_KEY)
    if not isinstance(block, Mapping) or not isinstance(block.get(part), Mapping):
        return None  # TF Serving shares no manifest: the model checks the names
    return set(block[part])
