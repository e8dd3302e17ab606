"""Promise 4 — bad input is refused with a client error and a message, never INTERNAL/500.

Against the shared server's `retrieval` model (max MAX_BATCH = 4096 rows per request): a table of bad
gRPC requests (official stubs) and bad REST requests (plain HTTP), each with the status it
must get and a word its message must contain. TF Serving answers an unknown signature
with FAILED_PRECONDITION (HTTP 400) and an unknown version label with INVALID_ARGUMENT;
scann-serve does the same. After each table the server must still be SERVING.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from _rel_support import MAX_BATCH, SharedServer, prediction_stub
from serve_helpers import predict_request
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

MODEL = "retrieval"
CLIENT_ERRORS = {"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"}


def _tensor(array: Any) -> Any:
    import tensorflow as tf

    return tf.make_tensor_proto(array)


def _request(signature: str = "serving_default", **inputs: Any) -> Any:
    return predict_request(MODEL, signature=signature, **inputs)


def _spec(
    request: Any, *, name: str | None = None, version: int | None = None, label: str = ""
) -> Any:
    if name is not None:
        request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    return request


Q = np.asarray([b"1"], dtype=object)
EMB = np.ones((1, 8), np.float32)


def _huge_broadcast() -> Any:
    """One string value 'filling' a shape of 2**40 elements (TensorProto broadcast rule)."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2**40)]
        ),
        string_val=[b"1"],
    )


def _empty_but_huge() -> Any:
    """No values, shape [0, 2**62]: zero elements, yet no array library can shape it."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[
                tensor_shape_pb2.TensorShapeProto.Dim(size=0),
                tensor_shape_pb2.TensorShapeProto.Dim(size=2**62),
            ]
        ),
    )


GRPC_CASES: dict[str, tuple[Any, str, str]] = {
    "wrong dtype": (_request(query=np.asarray([1.0], np.float32)), "INVALID_ARGUMENT", "string"),
    "wrong shape": (_request(query=np.asarray([[b"1"]], object)), "INVALID_ARGUMENT", "shape"),
    "empty batch": (_request(query=np.asarray([], object)), "INVALID_ARGUMENT", "empty"),
    "oversized batch": (
        _request(query=np.asarray([b"1"] * (MAX_BATCH + 1), object)),
        "INVALID_ARGUMENT",
        str(MAX_BATCH),
    ),
    "broadcast to 2**40 rows": (_request(query=_huge_broadcast()), "INVALID_ARGUMENT", "query"),
    "empty tensor of shape [0, 2**62]": (
        _request(query=_empty_but_huge()),
        "INVALID_ARGUMENT",
        "query",
    ),
    "k zero": (_request("retrieve", query=Q, k=np.int32(0)), "INVALID_ARGUMENT", "k"),
    "k negative": (_request("retrieve", query=Q, k=np.int32(-3)), "INVALID_ARGUMENT", "k"),
    "k above max_k": (_request("retrieve", query=Q, k=np.int32(51)), "INVALID_ARGUMENT", "max_k"),
    "k as a vector": (
        _request("retrieve", query=Q, k=np.asarray([3], np.int32)),
        "INVALID_ARGUMENT",
        "k",
    ),
    "unknown model": (_spec(_request(query=Q), name="nope"), "NOT_FOUND", "nope"),
    "empty model name": (_spec(_request(query=Q), name=""), "INVALID_ARGUMENT", "name"),
    "unknown version": (_spec(_request(query=Q), version=99), "NOT_FOUND", "99"),
    "unknown label": (_spec(_request(query=Q), label="canary"), "INVALID_ARGUMENT", "canary"),
    "unknown signature": (_request("nope", query=Q), "FAILED_PRECONDITION", "nope"),
    "missing input": (_request("retrieve", query=Q), "INVALID_ARGUMENT", "k"),
    "unknown input": (_request(query=Q, color=Q), "INVALID_ARGUMENT", "color"),
    "non-UTF-8 query": (
        _request(query=np.asarray([b"\xff\xfe\x80"], object)),
        "INVALID_ARGUMENT",
        "UTF-8",
    ),
    "NaN embedding": (
        _request("search_embedding", embedding=np.full((1, 8), np.nan, np.float32)),
        "INVALID_ARGUMENT",
        "NaN",
    ),
    "Inf embedding": (
        _request("search_embedding", embedding=np.full((1, 8), np.inf, np.float32)),
        "INVALID_ARGUMENT",
        "Inf",
    ),
    "embedding of the wrong width": (
        _request("search_embedding", embedding=np.ones((1, 5), np.float32)),
        "INVALID_ARGUMENT",
        "embedding",
    ),
    "embedding as float64": (
        _request("search_embedding", embedding=EMB.astype(np.float64)),
        "INVALID_ARGUMENT",
        "float",
    ),
    "exclusions of another batch size": (
        _request("retrieve_with_exclusions", query=Q, exclude=np.asarray([[b"a"], [b"b"]], object)),
        "INVALID_ARGUMENT",
        "rows",
    ),
    "unsupported dtype": (
        _request(query=np.asarray([1 + 2j], np.complex64)),
        "INVALID_ARGUMENT",
        "query",
    ),
    "tensor_content of the wrong size": (
        _request(
            "search_embedding",
            embedding=tensor_pb2.TensorProto(
                dtype=types_pb2.DT_FLOAT,
                tensor_shape=tensor_shape_pb2.TensorShapeProto(
                    dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)] * 2
                ),
                tensor_content=b"\x00" * 7,
            ),
        ),
        "INVALID_ARGUMENT",
        "bytes",
    ),
}


@pytest.mark.parametrize("case", list(GRPC_CASES))
def test_bad_grpc_request_is_a_client_error(shared_server: SharedServer, case: str) -> None:
    request, code, word = GRPC_CASES[case]
    with pytest.raises(grpc.RpcError) as info:
        prediction_stub(shared_server.channel).Predict(request, timeout=10)
    error = info.value
    assert error.code().name == code, f"{case}: {error.code().name}: {error.details()}"
    assert word.lower() in (error.details() or "").lower(), f"{case}: {error.details()!r}"


def _rest(shared: SharedServer, path: str, body: bytes | None = None) -> requests.Response:
    url = f"{shared.rest_url}{path}"
    if body is None:
        return requests.get(url, timeout=10)
    return requests.post(url, data=body, timeout=10)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


PREDICT = f"/v1/models/{MODEL}:predict"
REST_CASES: dict[str, tuple[str, bytes | None, int, str]] = {
    "malformed JSON": (PREDICT, b'{"instances": [', 400, "json"),
    "JSON that is not an object": (PREDICT, b"[1, 2]", 400, "object"),
    "neither instances nor inputs": (PREDICT, _json({"rows": []}), 400, "instances"),
    "empty instances": (PREDICT, _json({"instances": []}), 400, "empty"),
    "wrong dtype": (PREDICT, _json({"instances": [1.5]}), 400, "query"),
    "oversized batch": (
        PREDICT,
        _json({"instances": ["1"] * (MAX_BATCH + 1)}),
        400,
        str(MAX_BATCH),
    ),
    "non-UTF-8 body": (PREDICT, b'{"instances": ["\xff\xfe"]}', 400, "json"),
    "lone surrogate escape": (PREDICT, b'{"instances": ["\\ud800"]}', 400, "unicode"),
    "k above max_k": (
        PREDICT,
        _json({"signature_name": "retrieve", "inputs": {"query": ["1"], "k": 51}}),
        400,
        "max_k",
    ),
    "k zero": (
        PREDICT,
        _json({"signature_name": "retrieve", "inputs": {"query": ["1"], "k": 0}}),
        400,
        "k",
    ),
    "NaN embedding": (
        PREDICT,
        b'{"signature_name": "search_embedding", "instances": [[NaN, 1, 1, 1, 1, 1, 1, 1]]}',
        400,
        "nan",
    ),
    "Infinity embedding": (
        PREDICT,
        b'{"signature_name": "search_embedding", "instances": [[Infinity, 1, 1, 1, 1, 1, 1, 1]]}',
        400,
        "inf",
    ),
    "unknown signature": (
        PREDICT,
        _json({"signature_name": "nope", "instances": ["1"]}),
        400,
        "nope",
    ),
    "unknown model": ("/v1/models/nope:predict", _json({"instances": ["1"]}), 404, "nope"),
    "unknown version": (
        f"/v1/models/{MODEL}/versions/99:predict",
        _json({"instances": ["1"]}),
        404,
        "99",
    ),
    "unknown label": (
        f"/v1/models/{MODEL}/labels/canary:predict",
        _json({"instances": ["1"]}),
        400,
        "canary",
    ),
    "version that is not a number": (f"/v1/models/{MODEL}/versions/abc", None, 400, "abc"),
    "unknown model status": ("/v1/models/nope", None, 404, "nope"),
    "unknown URL": ("/v2/whatever", None, 404, "/v2/whatever"),
}


@pytest.mark.parametrize("case", list(REST_CASES))
def test_bad_rest_request_is_a_client_error(shared_server: SharedServer, case: str) -> None:
    path, body, status, word = REST_CASES[case]
    reply = _rest(shared_server, path, body)
    assert reply.status_code == status, f"{case}: {reply.status_code} {reply.text}"
    error = reply.json().get("error", "")
    assert error and word.lower() in error.lower(), f"{case}: {error!r}"


def test_server_still_serving_after_bad_input(shared_server: SharedServer) -> None:
    assert shared_server.process.process.poll() is None
    assert shared_server.process.health() == "SERVING"
    reply = prediction_stub(shared_server.channel).Predict(
        predict_request(MODEL, ["1"]), timeout=10
    )
    assert reply.model_spec.name == MODEL
