"""The server's TF-free TF Serving messages (`_pb`) agree with tensorflow-serving-api's.

Every field `_pb` declares must exist in TF Serving's message of the same full name with the
same number, type and label, so the bytes the server reads and writes are TF Serving's.
(The client's own copies are checked the same way by tests/client/test_client_protos.py.)
"""

from __future__ import annotations

import importlib

import pytest
from google.protobuf import descriptor_pool
from scann_serving.server import _pb

#: The TF Serving modules that register the messages `_pb` defines for the server.
TF_SERVING_MODULES = (
    "tensorflow_serving.apis.classification_pb2",
    "tensorflow_serving.apis.regression_pb2",
    "tensorflow_serving.apis.inference_pb2",
    "tensorflow_serving.apis.model_management_pb2",
    "tensorflow_serving.apis.prediction_log_pb2",
    "tensorflow_serving.config.model_server_config_pb2",
)


def _messages(descriptor: object) -> list:
    out = [descriptor]
    for nested in descriptor.nested_types:  # type: ignore[attr-defined]
        out += _messages(nested)
    return out


@pytest.fixture(scope="module")
def reference() -> descriptor_pool.DescriptorPool:
    for module in TF_SERVING_MODULES:
        importlib.import_module(module)
    return descriptor_pool.Default()


def test_every_server_field_matches_tf_serving(reference: descriptor_pool.DescriptorPool) -> None:
    file = _pb.POOL.FindFileByName("scann_serving/server/tf_serving_server.proto")
    checked = 0
    for top in file.message_types_by_name.values():
        for message in _messages(top):
            if message.GetOptions().map_entry:
                continue
            theirs = reference.FindMessageTypeByName(message.full_name)
            for field in message.fields:
                other = theirs.fields_by_name[field.name]
                assert (field.number, field.is_repeated) == (other.number, other.is_repeated), (
                    field.full_name
                )
                # Log kinds the server only tells apart are bytes here, messages there: the
                # same wire type (length-delimited).
                if field.type != field.TYPE_BYTES:
                    assert field.type == other.type, field.full_name
                checked += 1
    assert checked > 30


def test_warmup_log_and_reload_config_round_trip(reference: descriptor_pool.DescriptorPool) -> None:
    from tensorflow_serving.apis import model_management_pb2, prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.model_spec.name = "m"
    log.predict_log.request.inputs["query"].string_val.append(b"1")
    ours = _pb.PredictionLog.FromString(log.SerializeToString())
    assert ours.WhichOneof("log_type") == "predict_log"
    assert ours.predict_log.request.inputs["query"].string_val == [b"1"]
    request = model_management_pb2.ReloadConfigRequest()
    model = request.config.model_config_list.config.add(name="m", base_path="/x")
    model.model_version_policy.specific.versions.extend([1, 2])
    model.version_labels["stable"] = 1
    parsed = _pb.ReloadConfigRequest.FromString(request.SerializeToString())
    assert parsed.SerializeToString(deterministic=True) == request.SerializeToString(
        deterministic=True
    )
