"""Conversions between Python/numpy values and `tensorflow.TensorProto` (no TensorFlow needed).

Encodings follow TensorFlow's `make_tensor_proto` / `make_ndarray`: strings go in
`string_val`, numbers in little-endian `tensor_content` (or the typed `*_val` field, where
one value stands for a tensor filled with it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scann_serving.client._errors import InvalidRequest
from scann_serving.client._proto import tf_framework_pb2 as fw

#: numpy dtype of each numeric DataType the client decodes.
_NUMPY_DTYPES: dict[int, np.dtype] = {
    fw.DT_FLOAT: np.dtype("<f4"),
    fw.DT_DOUBLE: np.dtype("<f8"),
    fw.DT_INT32: np.dtype("<i4"),
    fw.DT_INT64: np.dtype("<i8"),
    fw.DT_BOOL: np.dtype("?"),
}
#: The repeated field holding the values of each numeric DataType.
_VALUE_FIELDS: dict[int, str] = {
    fw.DT_FLOAT: "float_val",
    fw.DT_DOUBLE: "double_val",
    fw.DT_INT32: "int_val",
    fw.DT_INT64: "int64_val",
    fw.DT_BOOL: "bool_val",
}


def _shape(proto: fw.TensorProto, dims: Sequence[int]) -> None:
    for size in dims:
        proto.tensor_shape.dim.add(size=int(size))


def _as_bytes(value: str | bytes) -> bytes:
    """A key or identifier as sent: `str` encoded as UTF-8 (the wire's and every exported
    model's encoding), `bytes` as given."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from an undecodable argv
        raise InvalidRequest(
            f"{value!a} is not valid Unicode text ({exc.reason}); pass str keys that are text, "
            "or the raw bytes"
        ) from None


def string_tensor(values: Sequence[str | bytes]) -> fw.TensorProto:
    """A DT_STRING vector `[len(values)]`."""
    proto = fw.TensorProto(dtype=fw.DT_STRING)
    _shape(proto, [len(values)])
    proto.string_val.extend(_as_bytes(v) for v in values)
    return proto


def string_matrix(rows: Sequence[Sequence[str | bytes]]) -> fw.TensorProto:
    """A DT_STRING matrix `[len(rows), longest row]`; short rows are padded with b"".

    The padding never matches a candidate identifier (exported identifiers are non-empty).
    """
    width = max((len(row) for row in rows), default=0)
    proto = fw.TensorProto(dtype=fw.DT_STRING)
    _shape(proto, [len(rows), width])
    for row in rows:
        proto.string_val.extend(_as_bytes(v) for v in row)
        proto.string_val.extend(b"" for _ in range(width - len(row)))
    return proto


def int32_scalar(value: int) -> fw.TensorProto:
    """A DT_INT32 scalar (shape `[]`)."""
    return fw.TensorProto(dtype=fw.DT_INT32, int_val=[value])


def integer_tensor(array: np.ndarray) -> fw.TensorProto:
    """A DT_INT64 or DT_INT32 tensor of `array`'s dtype and shape (`tensor_content` bytes)."""
    dtype = fw.DT_INT64 if array.dtype == np.int64 else fw.DT_INT32
    data = np.ascontiguousarray(array, dtype=_NUMPY_DTYPES[dtype])
    proto = fw.TensorProto(dtype=dtype, tensor_content=data.tobytes())
    _shape(proto, data.shape)
    return proto


def float32_tensor(array: np.ndarray) -> fw.TensorProto:
    """A DT_FLOAT tensor of `array`'s shape, as little-endian bytes in `tensor_content`."""
    data = np.ascontiguousarray(array, dtype="<f4")
    proto = fw.TensorProto(dtype=fw.DT_FLOAT, tensor_content=data.tobytes())
    _shape(proto, data.shape)
    return proto


def _decode_strings(values: Sequence[bytes]) -> list[str]:
    # Strict: a lossy decode would hand back an identifier that matches nothing.
    try:
        return [v.decode("utf-8") for v in values]
    except UnicodeDecodeError as exc:
        index = next(i for i, v in enumerate(values) if not _is_utf8(v))
        raise ValueError(
            f"string element {index} ({values[index]!r:.60}) is not valid UTF-8 ({exc.reason})"
        ) from None


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def to_numpy(proto: fw.TensorProto) -> np.ndarray:
    """Decode a TensorProto: DT_STRING becomes a `str` array (UTF-8, strictly), numbers
    their numpy dtype.

    Raises:
        ValueError: for a dtype the client does not decode, values not matching the shape,
            or a string that is not UTF-8.
    """
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    size = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == fw.DT_STRING:
        values = np.array(_decode_strings(proto.string_val), dtype=str)
    elif proto.dtype in _NUMPY_DTYPES:
        dtype = _NUMPY_DTYPES[proto.dtype]
        if proto.tensor_content:
            values = np.frombuffer(proto.tensor_content, dtype=dtype)
        else:
            values = np.asarray(getattr(proto, _VALUE_FIELDS[proto.dtype]), dtype=dtype)
    else:
        name = fw.DataType.Name(proto.dtype) if proto.dtype in fw.DataType.values() else proto.dtype
        raise ValueError(f"cannot decode a tensor of dtype {name}")
    if values.size == 1 and size != 1:
        values = np.full(size, values[0], dtype=values.dtype)
    if values.size != size:
        raise ValueError(f"tensor holds {values.size} values for shape {list(shape)}")
    return values.reshape(shape).astype(values.dtype.newbyteorder("="), copy=False)
