"""TF Serving's REST JSON formats: row (`instances`) and columnar (`inputs`) requests,
`predictions` / `outputs` responses, and the metadata object. Strings are UTF-8 text or
`{"b64": "..."}`. The REST adapter's half of the wire, free of TensorFlow and TF Serving
protos (the status page is `_wire`'s GetModelStatusResponse printed as JSON, in `_rest`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import numpy as np
from google.protobuf import json_format
from scann_serving.client.contract import MANIFEST_METADATA_FIELD, SIGNATURE_DEF_METADATA_FIELD
from scann_serving.server._core import MetadataResult
from scann_serving.server._errors import InvalidArgument
from scann_serving.server._servable import TensorInfo

_NUMERIC_KINDS = {"float32": "if", "float64": "if", "int32": "i", "int64": "i", "bool": "b"}
_INTEGER_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_DECIMAL = re.compile(r"[+-]?[0-9]+", re.ASCII)


def parse_body(body: bytes) -> dict[str, Any]:
    """The request JSON object, or InvalidArgument naming the problem."""
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"JSON Parse error: {exc}; send a JSON object") from exc
    except RecursionError as exc:
        raise InvalidArgument("JSON Parse error: nested too deeply") from exc
    if not isinstance(data, dict):
        raise InvalidArgument('request body must be a JSON object with "instances" or "inputs"')
    return data


def request_inputs(
    data: dict[str, Any], specs: dict[str, TensorInfo]
) -> tuple[dict[str, np.ndarray], bool]:
    """(inputs, row_format) from a predict body, converted with the signature's dtypes."""
    if ("instances" in data) == ("inputs" in data):
        raise InvalidArgument(
            'request must have exactly one of "instances" (row format) or "inputs" (columnar format)'
        )
    if "instances" in data:
        return _rows(data["instances"], specs), True
    raw = data["inputs"]
    if isinstance(raw, dict) and (len(specs) != 1 or set(raw) <= set(specs)) and "b64" not in raw:
        columns = raw
    elif len(specs) == 1:
        columns = {next(iter(specs)): raw}
    else:
        raise InvalidArgument(f'"inputs" must be an object naming each input: {sorted(specs)}')
    return {key: to_array(key, value, specs.get(key)) for key, value in columns.items()}, False


def _rows(instances: Any, specs: dict[str, TensorInfo]) -> dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise InvalidArgument(
            '"instances" must be a non-empty list (an empty batch has nothing to predict)'
        )
    named = all(isinstance(i, dict) and "b64" not in i for i in instances)
    if not named:
        if len(specs) != 1:
            raise InvalidArgument(
                f"each instance must be an object naming the inputs {sorted(specs)}"
            )
        key = next(iter(specs))
        return {key: to_array(key, instances, specs[key])}
    keys = set(instances[0])
    if any(set(i) != keys for i in instances):
        raise InvalidArgument("every instance must name the same inputs")
    out = {}
    for key in keys:
        values = [i[key] for i in instances]
        spec = specs.get(key)
        if spec is not None and spec.shape == ():  # a scalar (e.g. k): one value for the batch
            if any(v != values[0] for v in values):
                raise InvalidArgument(
                    f"input '{key}' is a scalar; give every instance the same value "
                    'or send it in the columnar "inputs" format'
                )
            out[key] = to_array(key, values[0], spec)
        else:
            out[key] = to_array(key, values, spec)
    return out


def to_array(key: str, value: Any, spec: TensorInfo | None) -> np.ndarray:
    """A JSON value as a numpy array of the signature's dtype."""
    if spec is None:
        raise InvalidArgument(f"input '{key}' is not an input of this signature")
    if spec.dtype == "string":
        try:
            return _strings(key, value)
        except RecursionError as exc:
            raise InvalidArgument(f"input '{key}' is nested too deeply") from exc
    if spec.dtype in _INTEGER_RANGES:
        try:
            return _integers(key, value, spec.dtype)
        except RecursionError as exc:
            raise InvalidArgument(f"input '{key}' is nested too deeply") from exc
    try:
        array = np.asarray(value)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"input '{key}' is ragged or malformed: {exc}") from exc
    kinds = _NUMERIC_KINDS.get(spec.dtype)
    if kinds is None or array.dtype.kind not in kinds:
        raise InvalidArgument(
            f"input '{key}' expects {spec.dtype} values but got {_describe(array)}"
        )
    try:
        return array.astype(spec.dtype)
    except OverflowError as exc:
        raise InvalidArgument(f"input '{key}' has a value out of range for {spec.dtype}") from exc


def _integers(key: str, value: Any, dtype: str) -> np.ndarray:
    """JSON integers, or decimal strings (JSON numbers lose int64 precision past 2**53)."""
    low, high = _INTEGER_RANGES[dtype]

    def leaf(v: Any) -> Any:
        if isinstance(v, list):
            return [leaf(x) for x in v]
        number = int(v) if isinstance(v, str) and _DECIMAL.fullmatch(v) else v
        if isinstance(number, bool) or not isinstance(number, int):
            raise InvalidArgument(
                f"input '{key}' expects {dtype} values but got {type(v).__name__} {v!r:.40}; "
                'send integers, or decimal strings such as "42"'
            )
        if not low <= number <= high:
            raise InvalidArgument(f"input '{key}' has a value out of range for {dtype}: {v!r:.40}")
        return number

    nested = leaf(value)
    shape = _shape(nested, key)
    return np.asarray(list(_flatten(nested)), dtype=dtype).reshape(shape)


def _describe(array: np.ndarray) -> str:
    return {"U": "strings", "O": "mixed or nested values", "b": "booleans", "f": "floats"}.get(
        array.dtype.kind, str(array.dtype)
    )


def _strings(key: str, value: Any) -> np.ndarray:
    def leaf(v: Any) -> Any:
        if isinstance(v, list):
            return [leaf(x) for x in v]
        if isinstance(v, str):
            try:
                return v.encode("utf-8")
            except UnicodeEncodeError as exc:  # JSON allows a lone surrogate escape, "\ud800"
                raise InvalidArgument(
                    f"input '{key}' has a string that is not valid Unicode ({exc.reason} at "
                    f'{v[exc.start : exc.end]!a}); send UTF-8 text or {{"b64": ...}} for bytes'
                ) from None
        if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
            try:
                return base64.b64decode(v["b64"], validate=True)
            except binascii.Error as exc:
                raise InvalidArgument(f"input '{key}' has invalid base64: {exc}") from exc
        raise InvalidArgument(f"input '{key}' expects strings but got {type(v).__name__} {v!r:.40}")

    nested = leaf(value)
    shape = _shape(nested, key)
    out = np.empty(math.prod(shape), dtype=object)
    out[:] = list(_flatten(nested))
    return out.reshape(shape)


def _shape(nested: Any, key: str) -> tuple[int, ...]:
    if not isinstance(nested, list):
        return ()
    inner = {_shape(x, key) for x in nested}
    if len(inner) > 1:
        raise InvalidArgument(f"input '{key}' is ragged: every row needs the same length")
    return (len(nested), *(inner.pop() if inner else ()))


def _flatten(nested: Any) -> Any:
    if isinstance(nested, list):
        for x in nested:
            yield from _flatten(x)
    else:
        yield nested


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype == object:

        def text(v: bytes) -> Any:
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(v).decode()}

        flat = [text(v) for v in array.ravel().tolist()]
        return (
            np.asarray(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
        )
    return array.tolist()


def predict_body(outputs: dict[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """The response object: {"predictions": [...]} (row) or {"outputs": ...} (columnar)."""
    if not row_format:
        if len(outputs) == 1:
            return {"outputs": _jsonable(next(iter(outputs.values())))}
        return {"outputs": {key: _jsonable(value) for key, value in outputs.items()}}
    columns = {key: _jsonable(value) for key, value in outputs.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    rows = len(next(iter(columns.values())))
    return {"predictions": [{key: columns[key][i] for key in columns} for i in range(rows)]}


def metadata_body(meta: MetadataResult) -> dict[str, Any]:
    """GET .../metadata: the model spec, its SignatureDefs and the ScaNN manifest."""
    defs = {
        key: json_format.MessageToDict(value, preserving_proto_field_name=True)
        for key, value in meta.signature_defs.items()
    }
    return {
        "model_spec": {"name": meta.model, "signature_name": "", "version": str(meta.version)},
        "metadata": {
            SIGNATURE_DEF_METADATA_FIELD: {SIGNATURE_DEF_METADATA_FIELD: defs},
            MANIFEST_METADATA_FIELD: meta.manifest,
        },
    }
