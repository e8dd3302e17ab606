"""Random PredictRequests never get INTERNAL/UNKNOWN and never take the server down."""

from __future__ import annotations

from typing import Any

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

SIGNATURES = [
    "",
    "serving_default",
    "retrieve",
    "search_embedding",
    "retrieve_with_exclusions",
    "x",
]
INPUTS = ["query", "k", "embedding", "exclude", ""]
DTYPES = [
    types_pb2.DT_STRING,
    types_pb2.DT_FLOAT,
    types_pb2.DT_INT32,
    types_pb2.DT_INT64,
    types_pb2.DT_DOUBLE,
    types_pb2.DT_HALF,
    types_pb2.DT_BOOL,
    0,
    999,
]


@st.composite
def tensors(draw: Any) -> Any:
    proto = tensor_pb2.TensorProto(dtype=draw(st.sampled_from(DTYPES)))
    for size in draw(st.lists(st.integers(-1, 9), max_size=3)):
        proto.tensor_shape.dim.add().size = size
    if draw(st.booleans()):
        proto.tensor_shape.dim.add().size = draw(st.sampled_from([10**7, 2**40]))
    proto.string_val.extend(draw(st.lists(st.binary(max_size=6), max_size=4)))
    proto.float_val.extend(draw(st.lists(st.floats(width=32), max_size=10)))
    proto.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3)))
    if draw(st.booleans()):
        proto.tensor_content = draw(st.binary(max_size=40))
    return proto


@st.composite
def requests(draw: Any) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = draw(st.sampled_from(["retrieval", "retrieval", "nope", ""]))
    request.model_spec.signature_name = draw(st.sampled_from(SIGNATURES))
    if draw(st.booleans()):
        request.model_spec.version.value = draw(st.integers(-2, 3))
    for key in draw(st.lists(st.sampled_from(INPUTS), max_size=3, unique=True)):
        request.inputs[key].CopyFrom(draw(tensors()))
    request.output_filter.extend(
        draw(st.lists(st.sampled_from(["identifiers", "scores", "z"]), max_size=2))
    )
    return request


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_random_requests_never_internal(predict_stub: Any, request: Any) -> None:
    try:
        predict_stub.Predict(request, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), exc.details()
        assert exc.details()


def test_server_alive_after_fuzz(server: Any) -> None:
    assert server.health() == "SERVING"
