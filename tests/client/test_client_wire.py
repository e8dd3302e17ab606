"""Wire compatibility with tensorflow-serving-api, both ways.

Our requests are parsed by the official `tensorflow_serving.apis` messages and decoded by
TensorFlow's own `make_ndarray`; responses built with the official messages and
`make_tensor_proto` are decoded by ours.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from _client_fake import DEFAULT_K, DIM, MAX_K, signature_defs
from google.protobuf import wrappers_pb2
from scann_serving.client import ModelMetadata
from scann_serving.client._base import BaseRetrievalClient
from scann_serving.client._proto import tf_serving_pb2 as ours
from scann_serving.client._protocol import (
    parse_manifest,
    parse_metadata,
    parse_predict,
    parse_status,
)
from scann_serving.client._tensors import to_numpy
from scann_serving.client._types import Signature, TensorSpec
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2


def _meta() -> ModelMetadata:
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = "m"
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in signature_defs().items():
        sig_map.signature_def[key].CopyFrom(sig)
    response.metadata["signature_def"].Pack(sig_map)
    return parse_metadata(ours.GetModelMetadataResponse.FromString(response.SerializeToString()))


def _theirs(request: ours.PredictRequest) -> predict_pb2.PredictRequest:
    return predict_pb2.PredictRequest.FromString(request.SerializeToString())


def test_retrieve_request_is_read_by_tensorflow_serving_api() -> None:
    client = BaseRetrievalClient("x:1", model="m")
    plan = client._plan_retrieve(_meta(), (3, None), ["42", b"\xc3\xa9", 7], 9, None)
    theirs = _theirs(plan.request)
    assert theirs.model_spec.name == "m" and theirs.model_spec.version.value == 3
    assert theirs.model_spec.signature_name == "retrieve"
    assert tf.make_ndarray(theirs.inputs["query"]).tolist() == [b"42", b"\xc3\xa9", b"7"]
    k = tf.make_ndarray(theirs.inputs["k"])
    assert k.dtype == np.int32 and k.shape == () and int(k) == 9
    assert theirs.SerializeToString(deterministic=True) == plan.request.SerializeToString(
        deterministic=True
    )


def test_search_and_exclusion_requests_are_read_by_tensorflow() -> None:
    client = BaseRetrievalClient("x:1", model="m")
    embeddings = np.arange(2 * DIM, dtype=np.float64).reshape(2, DIM) / 7
    search = _theirs(client._plan_search(_meta(), (None, "canary"), embeddings, None).request)
    assert search.model_spec.version_label == "canary"
    decoded = tf.make_ndarray(search.inputs["embedding"])
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, embeddings.astype(np.float32))
    plan = client._plan_retrieve(_meta(), (None, None), ["a", "b"], None, [["x", "y"], ["z"]])
    exclude = tf.make_ndarray(_theirs(plan.request).inputs["exclude"])
    assert exclude.tolist() == [[b"x", b"y"], [b"z", b""]]


def test_official_predict_response_is_decoded_by_ours() -> None:
    ids = np.array([["a", "b", "c"], ["d", "é", "f"]])
    scores = np.array([[3, 2, 1], [0.5, 0.25, -1]], dtype=np.float32)
    theirs = predict_pb2.PredictResponse()
    theirs.model_spec.name = "m"
    theirs.model_spec.version.value = 4
    theirs.model_spec.signature_name = "retrieve"
    theirs.outputs["identifiers"].CopyFrom(tf.make_tensor_proto(np.char.encode(ids, "utf-8")))
    theirs.outputs["scores"].CopyFrom(tf.make_tensor_proto(scores))
    result = parse_predict(
        ours.PredictResponse.FromString(theirs.SerializeToString()), model="m", signature="retrieve"
    )
    assert result.identifiers.tolist() == ids.tolist()
    np.testing.assert_array_equal(result.scores, scores)
    assert (result.model_name, result.model_version, result.signature_name) == ("m", 4, "retrieve")


def test_tensor_encodings_tensorflow_produces_are_decoded() -> None:
    # make_tensor_proto packs numbers in tensor_content, or one value for a filled tensor.
    for array in (
        np.ones((2, 3), np.float32),
        np.arange(6, dtype=np.int64).reshape(3, 2),
        np.array(5, np.int32),
    ):
        proto = tf.make_tensor_proto(array)
        np.testing.assert_array_equal(to_numpy(_roundtrip(proto)), array)
    filled = tf.make_tensor_proto(2.5, dtype=tf.float32, shape=[2, 2])
    np.testing.assert_array_equal(to_numpy(_roundtrip(filled)), np.full((2, 2), 2.5, np.float32))
    from scann_serving.client._proto import tf_framework_pb2 as fw

    float_val = fw.TensorProto(dtype=fw.DT_FLOAT, float_val=[1, 2])
    float_val.tensor_shape.dim.add(size=2)
    assert tf.make_ndarray(_to_tf(float_val)).tolist() == [1.0, 2.0]


def _roundtrip(proto):
    from scann_serving.client._proto import tf_framework_pb2 as fw

    return fw.TensorProto.FromString(proto.SerializeToString())


def _to_tf(proto):
    from tensorflow.core.framework import tensor_pb2

    return tensor_pb2.TensorProto.FromString(proto.SerializeToString())


def test_official_metadata_and_manifest_are_decoded() -> None:
    meta = _meta()
    assert meta.signatures["retrieve"] == Signature(
        name="retrieve",
        method_name="tensorflow/serving/predict",
        inputs={
            "k": TensorSpec("k", "DT_INT32", ()),
            "query": TensorSpec("query", "DT_STRING", (None,)),
        },
        outputs={
            "identifiers": TensorSpec("identifiers", "DT_STRING", (None, None)),
            "scores": TensorSpec("scores", "DT_FLOAT", (None, None)),
        },
    )
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.metadata["scann_manifest"].Pack(
        wrappers_pb2.StringValue(value='{"max_k": 20, "k": 5}')
    )
    assert parse_manifest(
        ours.GetModelMetadataResponse.FromString(response.SerializeToString())
    ) == {"max_k": MAX_K, "k": DEFAULT_K}


def test_official_status_response_is_decoded() -> None:
    theirs = get_model_status_pb2.GetModelStatusResponse()
    theirs.model_version_status.add(
        version=2, state=get_model_status_pb2.ModelVersionStatus.LOADING
    )
    failed = theirs.model_version_status.add(
        version=1, state=get_model_status_pb2.ModelVersionStatus.END
    )
    failed.status.error_code = 3
    failed.status.error_message = "bad SavedModel"
    status = parse_status("m", ours.GetModelStatusResponse.FromString(theirs.SerializeToString()))
    assert [(v.version, v.state, v.error_code, v.error_message) for v in status.versions] == [
        (1, "END", "INVALID_ARGUMENT", "bad SavedModel"),
        (2, "LOADING", "OK", ""),
    ]
    assert not status.available


def test_unknown_fields_from_newer_servers_survive() -> None:
    theirs = predict_pb2.PredictRequest(client_id=b"abc")  # a field our minimal proto omits
    theirs.model_spec.name = "m"
    back = predict_pb2.PredictRequest.FromString(
        ours.PredictRequest.FromString(theirs.SerializeToString()).SerializeToString()
    )
    assert back.client_id == b"abc"
