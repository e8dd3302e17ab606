"""Promise 4 (fuzz) — random PredictRequests and REST bodies never get INTERNAL/500 or a crash.

Hypothesis draws requests of two kinds: wild ones (any dtype, odd shapes including
negative and 2**62 dims, unknown rank, random values and tensor_content, random model,
version, label and signature) and near-valid ones (the real signatures and input names
with random batch sizes, k, embedding widths, NaN/Inf, non-UTF-8 bytes) that get past
the checks into ScaNN. Every answer must be OK or a client error; afterwards the server
must be alive and SERVING. Fast: a few hundred fixed cases; soak: thousands of random ones.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
import requests
from _rel_support import SharedServer, prediction_stub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import predict_request
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

MODEL = "retrieval"
ALLOWED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"}
SIGNATURES = ["serving_default", "retrieve", "search_embedding", "retrieve_with_exclusions"]
INPUT_NAMES = ["query", "k", "embedding", "exclude"]
DTYPES = sorted(v for v in types_pb2.DataType.values() if v < 100)  # not the _REF twins
COMMON = [types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT32, types_pb2.DT_INT64]

FAST = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SOAK = settings(
    max_examples=5000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _tensor(
    dtype: int,
    dims: list[int] | None,
    strings: list[bytes],
    floats: list[float],
    ints: list[int],
    content: bytes,
) -> Any:
    proto = tensor_pb2.TensorProto(dtype=dtype)
    if dims is None:
        proto.tensor_shape.unknown_rank = True
    else:
        proto.tensor_shape.CopyFrom(
            tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
            )
        )
    proto.string_val.extend(strings)
    proto.float_val.extend(floats)
    proto.int_val.extend(ints)
    proto.int64_val.extend(ints)
    proto.tensor_content = content
    return proto


_dims = st.lists(
    st.one_of(st.integers(0, 70), st.sampled_from([-1, 2**31, 2**40, 2**62])), max_size=3
)
wild_tensor = st.builds(
    _tensor,
    st.one_of(st.sampled_from(COMMON), st.sampled_from(DTYPES)),
    st.one_of(_dims, st.none()),
    st.lists(st.binary(max_size=12), max_size=70),
    st.lists(st.floats(width=32), max_size=70),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=70),
    st.one_of(st.just(b""), st.binary(max_size=600)),
)


@st.composite
def wild_requests(draw: Any) -> Any:
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = draw(st.one_of(st.just(MODEL), st.text(max_size=8)))
    choice = draw(st.sampled_from(["latest", "version", "label"]))
    if choice == "version":
        request.model_spec.version.value = draw(st.integers(-(2**63), 2**63 - 1))
    elif choice == "label":
        request.model_spec.version_label = draw(st.text(max_size=8))
    request.model_spec.signature_name = draw(
        st.one_of(st.sampled_from(SIGNATURES), st.text(max_size=8))
    )
    names = draw(st.lists(st.one_of(st.sampled_from(INPUT_NAMES), st.text(max_size=6)), max_size=4))
    for name in names:
        request.inputs[name].CopyFrom(draw(wild_tensor))
    request.output_filter.extend(
        draw(st.lists(st.sampled_from(["identifiers", "scores", "x"]), max_size=2))
    )
    return request


@st.composite
def near_valid_requests(draw: Any) -> Any:
    """The real signatures and inputs, with values chosen to probe the edges."""
    import numpy as np
    import tensorflow as tf

    signature = draw(st.sampled_from(SIGNATURES))
    batch = draw(st.integers(0, 70))
    queries = draw(
        st.lists(
            st.one_of(st.sampled_from([b"1", b"7", b"unknown"]), st.binary(max_size=8)),
            min_size=batch,
            max_size=batch,
        )
    )
    request = predict_request(MODEL, queries, signature=signature)
    if signature == "retrieve":
        k = draw(st.integers(-5, 60))
        dtype = draw(st.sampled_from([np.int32, np.int32, np.int64]))
        request.inputs["k"].CopyFrom(tf.make_tensor_proto(np.asarray(k, dtype)))
    elif signature == "search_embedding":
        del request.inputs["query"]
        width = draw(st.sampled_from([8, 8, 7, 9]))
        values = draw(st.lists(st.floats(width=32), min_size=batch * width, max_size=batch * width))
        array = np.asarray(values, np.float32).reshape(batch, width)
        request.inputs["embedding"].CopyFrom(tf.make_tensor_proto(array))
    elif signature == "retrieve_with_exclusions":
        rows = draw(st.sampled_from([batch, batch, batch + 1]))
        width = draw(st.integers(0, 4))
        cells = draw(st.lists(st.binary(max_size=8), min_size=rows * width, max_size=rows * width))
        array = np.asarray(cells, dtype=object).reshape(rows, width)
        request.inputs["exclude"].CopyFrom(tf.make_tensor_proto(array, dtype=tf.string))
    return request


def _check_grpc(shared: SharedServer, request: Any) -> None:
    try:
        reply = prediction_stub(shared.channel).Predict(request, timeout=10)
    except grpc.RpcError as exc:
        code = exc.code().name
        assert code in ALLOWED, f"{code}: {exc.details()}\nrequest: {request}"
        assert exc.details(), f"{code} without a message\nrequest: {request}"
    else:
        assert reply.outputs, f"an OK answer without outputs\nrequest: {request}"


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
rest_bodies = st.one_of(
    st.binary(max_size=200),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda sig, key, value: json.dumps({"signature_name": sig, key: value}).encode(),
        st.one_of(st.sampled_from(SIGNATURES), st.text(max_size=6)),
        st.sampled_from(["instances", "inputs"]),
        _json_values,
    ),
)


def _check_rest(shared: SharedServer, path: str, body: bytes) -> None:
    reply = requests.post(f"{shared.rest_url}{path}", data=body, timeout=10)
    assert reply.status_code in (200, 400, 404), f"{reply.status_code} {reply.text}\nbody: {body!r}"
    payload = reply.json()
    if reply.status_code != 200:
        assert payload.get("error"), f"{reply.status_code} without an error message: {payload}"


def _assert_alive(shared: SharedServer) -> None:
    assert shared.process.process.poll() is None, shared.process.logs[-3000:]
    assert shared.process.health() == "SERVING"
    reply = prediction_stub(shared.channel).Predict(predict_request(MODEL, ["1"]), timeout=10)
    assert reply.model_spec.version.value >= 1


PATHS = st.sampled_from([f"/v1/models/{MODEL}:predict", f"/v1/models/{MODEL}/versions/1:predict"])


def test_fuzz_grpc_predict(shared_server: SharedServer) -> None:
    """Fast variant: 300 fixed-seed random PredictRequests."""

    @FAST
    @given(st.one_of(wild_requests(), near_valid_requests()))
    def run(request: Any) -> None:
        _check_grpc(shared_server, request)

    run()
    _assert_alive(shared_server)


def test_fuzz_rest_predict(shared_server: SharedServer) -> None:
    """Fast variant: 300 fixed-seed random REST predict bodies."""

    @FAST
    @given(PATHS, rest_bodies)
    def run(path: str, body: bytes) -> None:
        _check_rest(shared_server, path, body)

    run()
    _assert_alive(shared_server)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_fuzz_soak(shared_server: SharedServer) -> None:
    """Soak variant: 5,000 random PredictRequests and 5,000 random REST bodies."""

    @SOAK
    @given(st.one_of(wild_requests(), near_valid_requests()))
    def run_grpc(request: Any) -> None:
        _check_grpc(shared_server, request)

    @SOAK
    @given(PATHS, rest_bodies)
    def run_rest(path: str, body: bytes) -> None:
        _check_rest(shared_server, path, body)

    run_grpc()
    run_rest()
    _assert_alive(shared_server)
