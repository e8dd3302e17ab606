"""Predict over gRPC (official stubs) and REST equals the in-process SavedModel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import requests
import tensorflow as tf
from serve_helpers import predict_request
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

MODEL = "retrieval"
QUERIES = np.asarray([b"1", b"7", b"42", b"unknown-user"], dtype=object)


def _request(signature: str, **inputs: Any) -> Any:
    return predict_request(MODEL, signature=signature, **inputs)


def _local(saved_model: Any, signature: str, **inputs: Any) -> dict[str, np.ndarray]:
    out = saved_model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {key: value.numpy() for key, value in out.items()}


CASES = [
    ("serving_default", {"query": QUERIES}),
    ("retrieve", {"query": QUERIES, "k": np.int32(5)}),
    ("retrieve", {"query": QUERIES[:1], "k": np.int32(50)}),
    (
        "retrieve_with_exclusions",
        {"query": QUERIES[:2], "exclude": np.asarray([[b"item_86"], [b"x"]], dtype=object)},
    ),
]


@pytest.mark.parametrize(("signature", "inputs"), CASES, ids=[c[0] for c in CASES])
def test_grpc_predict_equals_in_process(
    predict_stub: Any, saved_model: Any, signature: str, inputs: dict
) -> None:
    response = predict_stub.Predict(_request(signature, **inputs), timeout=10)
    expected = _local(saved_model, signature, **inputs)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == signature
    np.testing.assert_array_equal(
        tf.make_ndarray(response.outputs["identifiers"]), expected["identifiers"]
    )
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["scores"]), expected["scores"], rtol=1e-6
    )


def test_grpc_search_embedding_equals_in_process_and_brute_force(
    predict_stub: Any, saved_model: Any, tiny_spec: Any
) -> None:
    embeddings = tiny_spec.user_embeddings[:3]
    response = predict_stub.Predict(_request("search_embedding", embedding=embeddings), timeout=10)
    expected = _local(saved_model, "search_embedding", embedding=embeddings)
    identifiers = tf.make_ndarray(response.outputs["identifiers"])
    np.testing.assert_array_equal(identifiers, expected["identifiers"])
    truth, _ = tiny_spec.brute_force(list(tiny_spec.users[:3]), 10)
    np.testing.assert_array_equal(identifiers.astype(str), truth.astype(str))


def test_output_filter_and_explicit_version(predict_stub: Any) -> None:
    request = _request("serving_default", query=QUERIES[:1])
    request.model_spec.version.value = 1
    request.output_filter.append("identifiers")
    response = predict_stub.Predict(request, timeout=10)
    assert set(response.outputs) == {"identifiers"}


def test_rest_row_and_columnar_equal_in_process(server: Any, saved_model: Any) -> None:
    expected = _local(saved_model, "serving_default", query=QUERIES)
    queries = [q.decode() for q in QUERIES]
    row = requests.post(
        f"{server.rest_url}/v1/models/{MODEL}:predict", json={"instances": queries}, timeout=10
    )
    assert row.status_code == 200, row.text
    predictions = row.json()["predictions"]
    assert [p["identifiers"] for p in predictions] == expected["identifiers"].astype(str).tolist()
    np.testing.assert_allclose([p["scores"] for p in predictions], expected["scores"], rtol=1e-6)
    col = requests.post(
        f"{server.rest_url}/v1/models/{MODEL}/versions/1:predict",
        json={"signature_name": "retrieve", "inputs": {"query": queries, "k": 3}},
        timeout=10,
    )
    assert col.status_code == 200, col.text
    expected_k3 = _local(saved_model, "retrieve", query=QUERIES, k=np.int32(3))
    assert col.json()["outputs"]["identifiers"] == expected_k3["identifiers"].astype(str).tolist()


def test_rest_search_embedding_row_format(server: Any, saved_model: Any, tiny_spec: Any) -> None:
    embeddings = tiny_spec.user_embeddings[:2]
    body = {"signature_name": "search_embedding", "instances": embeddings.tolist()}
    reply = requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    expected = _local(saved_model, "search_embedding", embedding=embeddings)
    assert [p["identifiers"] for p in reply.json()["predictions"]] == expected[
        "identifiers"
    ].astype(str).tolist()


def test_metadata_has_signatures_and_max_k(predict_stub: Any, server: Any) -> None:
    from google.protobuf import struct_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.extend(["signature_def", "scann_manifest"])
    response = predict_stub.GetModelMetadata(request, timeout=10)
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    assert {"serving_default", "retrieve", "search_embedding", "retrieve_with_exclusions"} <= set(
        defs.signature_def
    )
    assert set(defs.signature_def["retrieve"].inputs) == {"query", "k"}
    manifest = struct_pb2.Struct()
    response.metadata["scann_manifest"].Unpack(manifest)
    assert manifest["max_k"] == 50 and manifest["k"] == 10
    rest = requests.get(f"{server.rest_url}/v1/models/{MODEL}/metadata", timeout=10).json()
    assert rest["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    assert rest["metadata"]["scann_manifest"]["max_k"] == 50
    # Metadata says which backend runs the version (beside the version's own manifest).
    assert manifest["serving_backend"]["backend"] == server.backend
    assert rest["metadata"]["scann_manifest"]["serving_backend"]["backend"] == server.backend
    assert "retrieve" in rest["metadata"]["signature_def"]["signature_def"]


def test_status_grpc_and_rest(model_stub: Any, server: Any) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = model_stub.GetModelStatus(request, timeout=10)
    [status] = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    # The status message of an AVAILABLE version names the backend that runs it, and why.
    reason = status.status.error_message
    assert reason.startswith("--backend=") and server.backend in reason, reason
    rest = requests.get(f"{server.rest_url}/v1/models/{MODEL}", timeout=10).json()
    assert rest == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": reason},
            }
        ]
    }


def test_rest_row_format_with_scalar_k_and_b64(server: Any, saved_model: Any) -> None:
    body = {
        "signature_name": "retrieve",
        "instances": [{"query": "1", "k": 4}, {"query": {"b64": "Nw=="}, "k": 4}],
    }
    reply = requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    expected = _local(saved_model, "retrieve", query=QUERIES[:2], k=np.int32(4))
    got = [p["identifiers"] for p in reply.json()["predictions"]]
    assert got == expected["identifiers"].astype(str).tolist()
