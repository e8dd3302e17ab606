"""One version served from its native bundle: ScaNN's pybind searcher and numpy, no TensorFlow.

`NativeServable` is the second implementation of `_servable.Servable`, beside the
TensorFlow one (`_model.ServableVersion`). It answers the same signatures, with the same
SignatureDefs (the export stored the SavedModel's), the same input checks
(`_servable.validate_inputs`) and the same warmup file; the export verified that its
answers are the SavedModel's. A bundle without a lookup tower serves `search_embedding`
only; its other signatures answer FAILED_PRECONDITION saying how to serve them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.client.contract import (
    IDENTIFIERS,
    QUERY,
    RETRIEVE,
    RETRIEVE_FILTERED,
    SCORES,
    SERVING_DEFAULT,
    K,
)
from scann_serving.server._backend import servable_signatures
from scann_serving.server._bundle import (
    BundleError,
    bundle_dir,
    read_bundle,
    read_info,
    read_signature_defs,
)
from scann_serving.server._errors import FailedPrecondition, Internal, ServingError
from scann_serving.server._filters import FilterSchema
from scann_serving.server._native_search import PARALLEL_MIN_BATCH, run_signature
from scann_serving.server._pb import DataType, SignatureDefMap
from scann_serving.server._preflight import check_runtime, read_manifest
from scann_serving.server._servable import (
    DEFAULT_SIGNATURE,
    LoadError,
    Signature,
    TensorInfo,
    output_keys,
    query_id_range,
    validate_inputs,
)
from scann_serving.server._tensors import proto_to_array
from scann_serving.server._warmup import warmup_requests

BACKEND = "native"
#: TensorFlow's dtype names (what the TensorFlow servable's specs say) by DataType name.
_DTYPE_NAMES = {
    "DT_STRING": "string",
    "DT_FLOAT": "float32",
    "DT_DOUBLE": "float64",
    "DT_INT32": "int32",
    "DT_INT64": "int64",
    "DT_BOOL": "bool",
}


def _specs(infos: Any) -> dict[str, TensorInfo]:
    out = {}
    for key, info in infos.items():
        name = DataType.values_by_number[info.dtype].name
        shape = info.tensor_shape
        dims = (
            None if shape.unknown_rank else tuple(None if d.size < 0 else d.size for d in shape.dim)
        )
        out[key] = TensorInfo(_DTYPE_NAMES.get(name, name.removeprefix("DT_").lower()), dims)
    return out


class NativeServable:
    """A version served from `assets.extra/native/`.

    Args:
        name: The model name.
        version: The integer version.
        path: The version directory.
        max_request_batch_size: Largest batch one request may carry.
        reason: Why this version runs natively (status, metadata, logs).
    """

    backend = BACKEND

    def __init__(
        self, name: str, version: int, path: Path, max_request_batch_size: int, *, reason: str = ""
    ) -> None:
        self.name, self.version, self.path = name, version, path
        self.max_request_batch_size = max_request_batch_size
        self.backend_reason = reason
        self.manifest = read_manifest(path)
        check_runtime(self.manifest, path)
        directory = bundle_dir(path)
        try:
            info = read_info(directory)
            self._index = read_bundle(directory)
            defs = SignatureDefMap.FromString(read_signature_defs(directory)).signature_def
        except BundleError as exc:
            raise LoadError(str(exc)) from exc
        except Exception as exc:  # a damaged signature_defs.pb: protobuf's DecodeError, ...
            raise LoadError(
                f"{directory}: the native bundle is damaged ({type(exc).__name__}: {exc}); "
                "re-export the version or serve it with --backend=tensorflow"
            ) from exc
        self.covered = frozenset(info.signatures)
        self.signature_defs = dict(defs)
        self.signatures = {
            key: Signature(
                key,
                _specs(value.inputs),
                _specs(value.outputs),
                value.method_name or "tensorflow/serving/predict",
                None,
            )
            for key, value in defs.items()
            if key in servable_signatures(defs)
        }
        self.max_k = info.settings.max_k
        self.query_ids = query_id_range(self.manifest)
        self.filters = FilterSchema.from_manifest(self.manifest)
        self._keys_signatures = self._find_keys_signatures()

    def _find_keys_signatures(self) -> dict[str, str]:
        """Signature name -> its query dtype, for the signatures `predict_keys` answers:
        `serving_default` (query) and `retrieve` (query, scalar int32 k) over a lookup table,
        with the inputs the exporter writes."""
        if self._index.table is None:
            return {}
        out = {}
        for name, extra in ((SERVING_DEFAULT, {}), (RETRIEVE, {K: TensorInfo("int32", ())})):
            signature = self.signatures.get(name)
            if signature is None or name not in self.covered:
                continue
            query = signature.inputs.get(QUERY)
            if (
                query is not None
                and query.shape == (None,)
                and query.dtype in ("string", "int64")
                and signature.inputs == {QUERY: query, **extra}
                and set(signature.outputs) == {IDENTIFIERS, SCORES}
            ):
                out[name] = query.dtype
        return out

    def signature(self, name: str) -> Signature:
        """The signature called `name` ('' means serving_default), or FailedPrecondition."""
        key = name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise FailedPrecondition(
                f'Serving signature key "{key}" not found. Model {self.name!r} version '
                f"{self.version} has: {', '.join(sorted(self.signatures))}"
            )
        return self.signatures[key]

    def validate(self, signature: Signature, inputs: dict[str, np.ndarray]) -> int:
        """Checks inputs like the TensorFlow servable; refuses signatures the bundle lacks."""
        if signature.name not in self.covered and self._index.table is not None:
            raise FailedPrecondition(
                f"signature {signature.name!r} of model {self.name!r} version {self.version} "
                "is not in its native bundle (written by an scann-export that predates it); "
                "re-export the version, or serve it with scann-serve --backend=tensorflow "
                "(or auto)"
            )
        if signature.name not in self.covered:
            raise FailedPrecondition(
                f"signature {signature.name!r} of model {self.name!r} version {self.version} "
                "needs the query tower, which the native backend cannot run for this version "
                "(its query tower is not a lookup table, so the bundle holds only the index); "
                f"call {', '.join(sorted(self.covered))} with your own query embeddings, or "
                "serve the version with scann-serve --backend=tensorflow (or auto)"
            )
        return validate_inputs(
            signature,
            inputs,
            max_request_batch_size=self.max_request_batch_size,
            max_k=self.max_k,
            query_ids=self.query_ids,
            filters=self.filters,
        )

    def runs_quickly(self, signature: Signature, rows: int) -> bool:
        """Whether a validated call is a one-thread search of a few rows (tens of
        microseconds, less than handing it to another thread): the asyncio server runs
        such calls on its event loop. Filtered calls can take milliseconds, so never."""
        return rows < PARALLEL_MIN_BATCH and signature.name != RETRIEVE_FILTERED

    def predict_keys(
        self, signature: str, keys: list[Any], dtype: str, k: int | None
    ) -> tuple[str, dict[str, np.ndarray]] | None:
        """The common call, answered without the general conversion and checks: a few raw
        keys (`dtype` 'string': UTF-8 bytes, 'int64': ids) to `serving_default` (k None) or
        `retrieve` (k given). Returns (the signature's name, its outputs), the same as
        `validate` + `run` would; None for any call this does not cover or that those would
        refuse, which the caller then sends down the full path (and its error messages).
        """
        name = signature or DEFAULT_SIGNATURE
        if self._keys_signatures.get(name) != dtype or (k is None) != (name == SERVING_DEFAULT):
            return None
        if not 0 < len(keys) < PARALLEL_MIN_BATCH or len(keys) > self.max_request_batch_size:
            return None
        if k is not None and not 1 <= k <= self.max_k:
            return None
        if dtype == "int64" and self.query_ids is not None:
            low, high = self.query_ids
            if not all(low <= key <= high for key in keys):
                return None
        index = self._index
        assert index.table is not None
        rows = index.table.rows_of(keys)
        if rows is None:
            return None
        try:
            identifiers, scores = index.retrieve_rows(rows, index.settings.k if k is None else k)
        except Exception as exc:  # as `run`: ScaNN's errors are not the caller's fault
            raise Internal(f"native search failed: {type(exc).__name__}: {exc}") from exc
        return name, {IDENTIFIERS: identifiers, SCORES: scores}

    def run(
        self,
        signature: Signature,
        inputs: dict[str, np.ndarray],
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs the signature natively on validated inputs."""
        wanted = output_keys(signature, output_filter)
        try:
            identifiers, scores = run_signature(self._index, signature.name, inputs)
        except Exception as exc:  # ScaNN raises RuntimeError and friends: not the caller's fault
            raise Internal(f"native search failed: {type(exc).__name__}: {exc}") from exc
        outputs = {IDENTIFIERS: identifiers, SCORES: scores}
        return {key: outputs[key] for key in wanted}

    def warmup(self, iterations: int = 1) -> int:
        """Replays the warmup requests of the signatures the bundle serves."""
        path, requests = warmup_requests(self.path)
        for number, request in enumerate(requests):
            try:
                signature = self.signature(request.model_spec.signature_name)
                if signature.name not in self.covered:
                    continue
                inputs = {k: proto_to_array(v, k) for k, v in request.inputs.items()}
                self.validate(signature, inputs)
                for _ in range(iterations):
                    self.run(signature, inputs, list(request.output_filter) or None)
            except ServingError as exc:
                raise LoadError(f"warmup request {number} in {path} failed: {exc.message}") from exc
        return len(requests)
