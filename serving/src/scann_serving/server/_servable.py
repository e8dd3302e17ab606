"""What the core, the batcher and the manager need from one loaded model version.

`Servable` is the seam between the serving core and a model runtime: the TensorFlow
SavedModel implementation (`_model.ServableVersion`) is one, the native bundle's
(`_native_model.NativeServable`) another, the tests' fake a third. The manager builds
servables through a `ServableLoader` (`_backend` picks the implementation per version),
so nothing here imports TensorFlow. Implementations may also say which backend they are
(`backend`, `backend_reason`); the manager and core read those with `getattr`. The request checks every implementation shares live here too (pure numpy):
a request that is wrong answers INVALID_ARGUMENT with a message before a model sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scann_serving.client.contract import QUERY, SERVING_DEFAULT, K
from scann_serving.server._errors import InvalidArgument
from scann_serving.server._filters import FilterSchema, check_filters

DEFAULT_SIGNATURE = SERVING_DEFAULT


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of a signature: dtype name ('string', 'float32', ...) and shape."""

    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Signature:
    """A callable signature with its input and output specs (`fn`: the runtime's callable)."""

    name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str
    fn: Any


class LoadError(Exception):
    """The version could not be loaded or warmed; the message names the step."""


class Servable(Protocol):
    """One loaded, runnable version of a model.

    Implementations are immutable once loaded and safe to call from many threads.
    """

    @property
    def name(self) -> str:
        """The model name."""
        ...

    @property
    def version(self) -> int:
        """The integer version."""
        ...

    @property
    def path(self) -> Path:
        """The version directory it was loaded from."""
        ...

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The ScaNN manifest (assets.extra/scann_manifest.json), None when it has none."""
        ...

    @property
    def signature_defs(self) -> Mapping[str, Any]:
        """Signature name -> tensorflow.SignatureDef (what GetModelMetadata reports)."""
        ...

    @property
    def signatures(self) -> Mapping[str, Signature]:
        """Signature name -> its runnable `Signature`."""
        ...

    def signature(self, name: str) -> Signature:
        """The signature called `name` ('' means serving_default), or FailedPrecondition."""
        ...

    def validate(self, signature: Signature, inputs: dict[str, np.ndarray]) -> int:
        """Checks inputs against the signature; returns the batch size (0 for none)."""
        ...

    def run(
        self,
        signature: Signature,
        inputs: dict[str, np.ndarray],
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs the signature on validated inputs; every output has the inputs' rows first."""
        ...

    def warmup(self, iterations: int = 1) -> int:
        """Replays the version's warmup requests; returns how many there were."""
        ...


#: Builds the servable of one version: (model name, version, version directory) -> Servable.
#: Raises `LoadError` (or `_preflight.PreflightError`) when the version cannot serve.
ServableLoader = Callable[[str, int, Path], Servable]


def output_keys(signature: Signature, output_filter: list[str] | None) -> list[str]:
    """The outputs to return: all of the signature's, or the filter's (checked, deduplicated)."""
    if not output_filter:
        return list(signature.outputs)
    unknown = [key for key in output_filter if key not in signature.outputs]
    if unknown:
        raise InvalidArgument(
            f"output_filter names {unknown}, which signature {signature.name!r} does not "
            f"return; choose from {sorted(signature.outputs)}"
        )
    return list(dict.fromkeys(output_filter))


def validate_inputs(
    signature: Signature,
    inputs: dict[str, np.ndarray],
    *,
    max_request_batch_size: int,
    max_k: int | None,
    query_ids: tuple[int, int] | None = None,
    filters: FilterSchema | None = None,
) -> int:
    """Checks inputs against a signature and the server's limits; returns the batch size.

    Args:
        signature: The signature the request calls.
        inputs: Input name -> array (strings as object arrays of bytes).
        max_request_batch_size: Most rows one request may carry.
        max_k: Largest `k` the version accepts (the manifest's max_k), None for no bound.
        query_ids: The ids (inclusive) an integer `query` input may carry (the manifest's
            `query_key`), None for no bound.
        filters: The attribute schema `retrieve_filtered`'s tokens and restricts may name
            (the manifest's `attributes`), None to check only their syntax.

    Returns:
        The number of rows of the batched inputs, 0 when every input is a scalar.
    """
    expected = set(signature.inputs)
    if set(inputs) != expected:
        extra = sorted(set(inputs) - expected)
        missing = sorted(expected - set(inputs))
        raise InvalidArgument(
            f"input size does not match signature {signature.name!r}: sent {sorted(inputs)}, "
            f"expected {sorted(expected)}. Sent extra: {extra}. Missing but required: {missing}."
        )
    batch = 0
    for key, array in inputs.items():
        batch = _check_input(key, array, signature.inputs[key], batch, max_request_batch_size)
        _check_values(key, array, max_k)
        if key == QUERY and query_ids is not None and array.dtype.kind == "i":
            _check_ids(key, array, query_ids)
    check_filters(inputs, filters)
    return batch


def query_id_range(manifest: dict[str, Any] | None) -> tuple[int, int] | None:
    """The manifest's `query_key` bounds (min_id, max_id), when the tower has known ids."""
    block = (manifest or {}).get("query_key")
    if not isinstance(block, dict):
        return None
    low, high = block.get("min_id"), block.get("max_id")
    if isinstance(low, int) and isinstance(high, int):
        return low, high
    return None


def _check_ids(key: str, array: np.ndarray, ids: tuple[int, int]) -> None:
    outside = (array < ids[0]) | (array > ids[1])
    if outside.any():
        index = int(np.flatnonzero(outside.ravel())[0])
        raise InvalidArgument(
            f"input '{key}' element {index} is id {int(array.ravel()[index])}, outside the ids "
            f"the query tower knows ({ids[0]}..{ids[1]}); send known ids"
        )


def _check_input(
    key: str, array: np.ndarray, spec: TensorInfo, batch: int, max_request_batch_size: int
) -> int:
    is_string = array.dtype == object
    if (spec.dtype == "string") != is_string or (not is_string and array.dtype.name != spec.dtype):
        got = "string" if is_string else array.dtype.name
        raise InvalidArgument(
            f"input '{key}' expects {spec.dtype} but {got} was provided; send a {spec.dtype} tensor"
        )
    if spec.shape is not None:
        _check_shape(key, array.shape, spec.shape)
    if array.ndim >= 1:
        if array.shape[0] == 0:
            raise InvalidArgument(
                f"input '{key}' has an empty batch (shape {list(array.shape)}); send at least one row"
            )
        if array.shape[0] > max_request_batch_size:
            raise InvalidArgument(
                f"input '{key}' has a batch of {array.shape[0]} rows, more than the server's "
                f"limit of {max_request_batch_size}; split the request"
            )
        if batch and array.shape[0] != batch:
            raise InvalidArgument(
                f"input '{key}' has {array.shape[0]} rows but another input has {batch}; "
                "every batched input needs the same number of rows"
            )
        batch = array.shape[0]
    return batch


def _check_shape(key: str, shape: tuple[int, ...], spec: tuple[int | None, ...]) -> None:
    ok = len(shape) == len(spec) and all(
        s is None or s == d for d, s in zip(shape, spec, strict=False)
    )
    if not ok:
        want = ["batch" if s is None else s for s in spec] if spec else "a scalar"
        raise InvalidArgument(
            f"input '{key}' has shape {list(shape)} but the signature expects {want}"
        )


def _check_values(key: str, array: np.ndarray, max_k: int | None) -> None:
    if array.dtype == object:
        for index, value in enumerate(array.ravel().tolist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument(
                    f"input '{key}' element {index} is not valid UTF-8; send UTF-8 encoded strings"
                ) from None
    elif array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidArgument(f"input '{key}' contains NaN or Inf; send finite values")
    elif key == K and array.ndim == 0:
        k = int(array)
        if k < 1 or (max_k is not None and k > max_k):
            raise InvalidArgument(
                f"k={k} is out of range: it must be between 1 and max_k={max_k} "
                "(the exported bound); lower k or re-export with a larger --max-k"
            )
