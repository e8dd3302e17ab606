"""Bad input answers INVALID_ARGUMENT/400 (or NOT_FOUND/404) with a message, never INTERNAL."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import requests
from serve_helpers import predict_request
from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

MODEL = "retrieval"
Q = np.asarray([b"1"], dtype=object)


def _request(signature: str = "serving_default", model: str = MODEL, **inputs: Any) -> Any:
    return predict_request(model, signature=signature, **inputs)


GRPC_CASES = {
    "unknown model": (_request(model="nope", query=Q), grpc.StatusCode.NOT_FOUND, "nope"),
    "unknown signature": (_request("nope", query=Q), grpc.StatusCode.FAILED_PRECONDITION, "nope"),
    "wrong dtype": (
        _request(query=np.asarray([1.0], np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expects string",
    ),
    "wrong shape": (
        _request(query=np.asarray([[b"1"]], dtype=object)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "shape",
    ),
    "empty batch": (
        _request(query=np.asarray([], dtype=object)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "empty batch",
    ),
    "missing input": (
        _request("retrieve", query=Q),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing but required: ['k']",
    ),
    "extra input": (
        _request(query=Q, k=np.int32(3)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Sent extra: ['k']",
    ),
    "k zero": (
        _request("retrieve", query=Q, k=np.int32(0)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_k=50",
    ),
    "k above max_k": (
        _request("retrieve", query=Q, k=np.int32(51)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_k=50",
    ),
    "k wrong dtype": (
        _request("retrieve", query=Q, k=np.int64(3)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "int32",
    ),
    "non utf8": (
        _request(query=np.asarray([b"\xff\xfe"], dtype=object)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "UTF-8",
    ),
    "nan embedding": (
        _request("search_embedding", embedding=np.full((1, 8), np.nan, np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "NaN",
    ),
    "wrong embedding dim": (
        _request("search_embedding", embedding=np.zeros((1, 3), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "shape",
    ),
    "oversized batch": (
        _request(query=np.asarray([b"1"] * 10_001, dtype=object)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "limit",
    ),
}


@pytest.mark.parametrize("case", list(GRPC_CASES))
def test_grpc_bad_input(predict_stub: Any, case: str) -> None:
    request, code, text = GRPC_CASES[case]
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Predict(request, timeout=10)
    assert info.value.code() == code, info.value.details()
    assert text in info.value.details()


def test_unknown_version_and_label(predict_stub: Any) -> None:
    request = _request(query=Q)
    request.model_spec.version.value = 7
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Predict(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    request = _request(query=Q)
    request.model_spec.version_label = "canary"
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Predict(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "canary" in info.value.details()


def test_classify_regress_multi_inference_answer_as_tf_serving(predict_stub: Any) -> None:
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = MODEL
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = MODEL
    multi = inference_pb2.MultiInferenceRequest()
    task = multi.tasks.add()
    task.model_spec.name = MODEL
    task.method_name = "tensorflow/serving/classify"
    for method, request, text in [
        (predict_stub.Classify, classify, "Expected classification signature method_name"),
        (predict_stub.Regress, regress, "Expected regression signature method_name"),
        (predict_stub.MultiInference, multi, "Expected classification signature method_name"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            method(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert text in info.value.details()


REST_CASES = [
    ("unknown model", "/v1/models/nope:predict", {"instances": ["1"]}, 404),
    ("unknown version", f"/v1/models/{MODEL}/versions/9:predict", {"instances": ["1"]}, 404),
    ("unknown label", f"/v1/models/{MODEL}/labels/canary:predict", {"instances": ["1"]}, 400),
    ("empty instances", f"/v1/models/{MODEL}:predict", {"instances": []}, 400),
    ("both formats", f"/v1/models/{MODEL}:predict", {"instances": ["1"], "inputs": ["1"]}, 400),
    ("wrong dtype", f"/v1/models/{MODEL}:predict", {"instances": [1.5]}, 400),
    (
        "k out of range",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "retrieve", "inputs": {"query": ["1"], "k": 500}},
        400,
    ),
    (
        "k wrong type",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "retrieve", "inputs": {"query": ["1"], "k": "x"}},
        400,
    ),
    (
        "ragged embedding",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "search_embedding", "instances": [[1.0] * 8, [1.0]]},
        400,
    ),
    (
        "unknown signature",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "x", "instances": ["1"]},
        400,
    ),
    ("bad path", f"/v1/modelz/{MODEL}", None, 404),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "status"), REST_CASES, ids=[c[0] for c in REST_CASES]
)
def test_rest_bad_input(server: Any, case: str, path: str, body: Any, status: int) -> None:
    if body is None:
        reply = requests.get(server.rest_url + path, timeout=10)
    else:
        reply = requests.post(server.rest_url + path, json=body, timeout=10)
    assert reply.status_code == status, reply.text
    assert isinstance(reply.json()["error"], str) and reply.json()["error"]


def test_rest_malformed_json_and_nan(server: Any) -> None:
    url = f"{server.rest_url}/v1/models/{MODEL}:predict"
    reply = requests.post(url, data=b"{not json", timeout=10)
    assert reply.status_code == 400 and "JSON" in reply.json()["error"]
    nan = b'{"signature_name": "search_embedding", "instances": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}'
    reply = requests.post(url, data=nan, timeout=10)
    assert reply.status_code == 400 and "NaN" in reply.json()["error"]


def test_server_still_serves_after_bad_input(predict_stub: Any) -> None:
    response = predict_stub.Predict(_request(query=Q), timeout=10)
    assert response.outputs["identifiers"].tensor_shape.dim[1].size == 10
