"""Fast conversion between `tensorflow.TensorProto` and numpy, without TensorFlow.

`tf.make_tensor_proto`/`tf.make_ndarray` cost tens of microseconds per call in Python,
which matters when the whole served call should cost little more than the ScaNN search.
These handle the dtypes the retrieval signatures use (string, float32, int32, int64, ...)
and raise `InvalidArgument` naming the input when a proto is inconsistent.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from scann_serving.server._errors import InvalidArgument
from scann_serving.server._pb import DataType, TensorProto, TensorShapeProto

#: DataType enum values by name (TF's types.proto numbering, from the TF-free copy).
_DT: dict[str, int] = {value.name: value.number for value in DataType.values}

#: DataType enum -> (numpy dtype, TensorProto repeated field holding its values).
_NUMERIC: dict[int, tuple[Any, str]] = {
    _DT["DT_FLOAT"]: (np.float32, "float_val"),
    _DT["DT_DOUBLE"]: (np.float64, "double_val"),
    _DT["DT_INT32"]: (np.int32, "int_val"),
    _DT["DT_INT16"]: (np.int16, "int_val"),
    _DT["DT_INT8"]: (np.int8, "int_val"),
    _DT["DT_UINT8"]: (np.uint8, "int_val"),
    _DT["DT_INT64"]: (np.int64, "int64_val"),
    _DT["DT_BOOL"]: (np.bool_, "bool_val"),
}
_DTYPE_OF_NUMPY: dict[Any, int] = {
    np.dtype(np.float32): _DT["DT_FLOAT"],
    np.dtype(np.float64): _DT["DT_DOUBLE"],
    np.dtype(np.int32): _DT["DT_INT32"],
    np.dtype(np.int64): _DT["DT_INT64"],
    np.dtype(np.bool_): _DT["DT_BOOL"],
    np.dtype(np.int16): _DT["DT_INT16"],
    np.dtype(np.int8): _DT["DT_INT8"],
    np.dtype(np.uint8): _DT["DT_UINT8"],
}

_STRING = _DT["DT_STRING"]
#: numpy writes its native byte order; TensorProto's tensor_content is little-endian.
_LITTLE_ENDIAN_HOST = sys.byteorder == "little"

#: Most elements one value may fill (TensorProto's broadcast of a single value).
MAX_BROADCAST_ELEMENTS = 1 << 22


def dtype_name(dtype: int) -> str:
    """'string', 'float', 'int32', ... for a DataType enum value (TF Serving's wording)."""
    try:
        return DataType.values_by_number[dtype].name.removeprefix("DT_").lower()
    except KeyError:
        return f"unknown DataType {dtype}"


#: Largest tensor a request may describe; a shape past this is refused before any allocation
#: (a TensorProto can claim a huge shape with one value that "fills" it).
MAX_ELEMENTS = 64 * 1024 * 1024


def _shape(proto: TensorProto, name: str) -> tuple[int, ...]:
    if proto.tensor_shape.unknown_rank:
        raise InvalidArgument(f"input '{name}' has an unknown rank; give its shape")
    dims = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in dims):
        raise InvalidArgument(f"input '{name}' has a negative dimension in shape {list(dims)}")
    # Non-zero dims only: an empty tensor of shape [0, 2**62] is too big for numpy to shape.
    if math.prod(d for d in dims if d) > MAX_ELEMENTS:
        raise InvalidArgument(
            f"input '{name}' has shape {list(dims)}, more than {MAX_ELEMENTS} elements; "
            "send a smaller request"
        )
    return dims


def _fill(values: Any, size: int, shape: tuple[int, ...], name: str) -> list[Any] | Any:
    count = len(values)
    if count == size:
        return values
    if count == 1 and size > 1:  # TensorProto's convention: one value fills the tensor
        if size > MAX_BROADCAST_ELEMENTS:  # a 20-byte request must not allocate gigabytes
            raise InvalidArgument(
                f"input '{name}' has 1 value for shape {list(shape)} ({size} elements), more "
                f"than {MAX_BROADCAST_ELEMENTS} can be filled from one value; send the values"
            )
        return list(values) * size
    raise InvalidArgument(
        f"input '{name}' has {count} values but its shape {list(shape)} needs {size}; "
        "send one value per element"
    )


def _common_case(proto: TensorProto) -> np.ndarray | None:
    """The array of the requests nearly every call sends, built without the general checks
    (a served call should cost little more than its search): a `[batch]` string tensor
    with one value per row, or a scalar with its one value. None for anything else, which
    `proto_to_array` then converts and checks in full."""
    dtype = proto.dtype
    dims = proto.tensor_shape.dim
    if dtype == _STRING:
        if len(dims) == 1 and not proto.tensor_shape.unknown_rank:
            values = proto.string_val
            if dims[0].size == len(values) <= MAX_ELEMENTS and values:
                return np.array(list(values), dtype=object)  # bytes are scalars to numpy
        return None
    if not dims and not proto.tensor_shape.unknown_rank and not proto.tensor_content:
        numeric = _NUMERIC.get(dtype)
        if numeric is not None:
            values = getattr(proto, numeric[1])
            if len(values) == 1:
                return np.array(values[0], dtype=numeric[0])
    return None


def proto_to_array(proto: TensorProto, name: str) -> np.ndarray:
    """A numpy array with the proto's values (strings come back as an object array of bytes)."""
    common = _common_case(proto)
    if common is not None:
        return common
    shape = _shape(proto, name)
    size = math.prod(shape)
    if proto.dtype == _DT["DT_STRING"]:
        values = _fill(proto.string_val, size, shape, name)
        out = np.empty(size, dtype=object)
        out[:] = list(values)
        return out.reshape(shape)
    if proto.dtype not in _NUMERIC:
        raise InvalidArgument(
            f"input '{name}' has dtype {dtype_name(proto.dtype)}, which no retrieval "
            "signature takes; send string, float or int32 tensors"
        )
    np_dtype, field = _NUMERIC[proto.dtype]
    if proto.tensor_content:
        itemsize = np.dtype(np_dtype).itemsize
        if len(proto.tensor_content) != size * itemsize:
            raise InvalidArgument(
                f"input '{name}' tensor_content has {len(proto.tensor_content)} bytes but shape "
                f"{list(shape)} of {dtype_name(proto.dtype)} needs {size * itemsize}"
            )
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape)
    values = _fill(getattr(proto, field), size, shape, name)
    return np.asarray(values, dtype=np_dtype).reshape(shape)


#: TensorShapeProtos by shape: responses have the same few shapes ([rows, k]), and copying
#: a built one costs less than adding its dims one by one. Bounded.
_SHAPES: dict[tuple[int, ...], Any] = {}
_MAX_CACHED_SHAPES = 1024


def _shape_proto(shape: tuple[int, ...]) -> Any:
    proto = _SHAPES.get(shape)
    if proto is None:
        proto = TensorShapeProto(dim=[{"size": size} for size in shape])
        if len(_SHAPES) < _MAX_CACHED_SHAPES:
            _SHAPES[shape] = proto
    return proto


def array_to_proto(array: np.ndarray, proto: TensorProto | None = None) -> Any:
    """Fills (or creates) a TensorProto from a numpy array (bytes/str object arrays → DT_STRING)."""
    proto = proto if proto is not None else TensorProto()
    proto.tensor_shape.CopyFrom(_shape_proto(array.shape))
    np_dtype = array.dtype  # its attributes, not `== object` (that builds a dtype each call)
    if np_dtype.kind in "OSU":
        proto.dtype = _STRING
        flat, values = array.ravel().tolist(), proto.string_val
        before = len(values)
        try:  # identifiers are bytes already; anything else is encoded one by one
            values.extend(flat)
        except TypeError:
            del values[before:]
            values.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
        return proto
    dtype = _DTYPE_OF_NUMPY.get(np_dtype)
    if dtype is None:
        raise TypeError(f"cannot encode numpy dtype {np_dtype} as a TensorProto")
    proto.dtype = dtype
    if _LITTLE_ENDIAN_HOST and np_dtype.byteorder in "=|<":
        proto.tensor_content = array.tobytes()  # C order, whatever the array's strides
    else:
        proto.tensor_content = array.astype(np_dtype.newbyteorder("<")).tobytes()
    return proto
