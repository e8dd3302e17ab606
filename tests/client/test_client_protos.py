"""The client's own protos: TF Serving's names and field numbers, no clash with TensorFlow's
in one process, method paths equal to the official stubs', generated code in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from scann_serving.client._channel import GET_MODEL_METADATA, GET_MODEL_STATUS, PREDICT
from scann_serving.client._proto import tf_error_pb2, tf_framework_pb2, tf_serving_pb2
from scann_serving.client._proto._pool import POOL
from tensorflow.core.framework import tensor_pb2  # noqa: F401 - registers the official protos
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: F401
from tensorflow_serving.apis import (  # noqa: F401
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

REPO = Path(__file__).resolve().parents[2]
MODULES = (tf_error_pb2, tf_framework_pb2, tf_serving_pb2)
OUR_MESSAGES = [m for mod in MODULES for m in mod.DESCRIPTOR.message_types_by_name.values()]


def _all_messages(descriptors):
    for d in descriptors:
        yield d
        yield from _all_messages(d.nested_types)


@pytest.mark.parametrize("ours", list(_all_messages(OUR_MESSAGES)), ids=lambda d: d.full_name)
def test_messages_match_the_official_definitions(ours) -> None:
    official = descriptor_pool.Default().FindMessageTypeByName(ours.full_name)
    assert ours is not official and ours.file.pool is POOL
    for field in ours.fields:
        theirs = official.fields_by_number[field.number]
        assert (field.name, field.type, field.is_repeated) == (
            theirs.name,
            theirs.type,
            theirs.is_repeated,
        )
        sub = field.message_type or field.enum_type
        theirs_sub = theirs.message_type or theirs.enum_type
        assert (sub and sub.full_name) == (theirs_sub and theirs_sub.full_name)
        assert (field.containing_oneof and field.containing_oneof.name) == (
            theirs.containing_oneof and theirs.containing_oneof.name
        )


def test_enums_match_the_official_values() -> None:
    enums = [
        tf_framework_pb2.DESCRIPTOR.enum_types_by_name["DataType"],
        tf_error_pb2.DESCRIPTOR.enum_types_by_name["Code"],
        tf_serving_pb2.ModelVersionStatus.DESCRIPTOR.enum_types_by_name["State"],
    ]
    for enum in enums:
        official = descriptor_pool.Default().FindEnumTypeByName(enum.full_name)
        theirs = {v.name: v.number for v in official.values}
        assert {v.name: v.number for v in enum.values}.items() <= theirs.items()


def test_method_paths_are_the_official_stubs() -> None:
    stub_source = Path(prediction_service_pb2_grpc.__file__).read_text()
    stub_source += Path(model_service_pb2_grpc.__file__).read_text()
    for path in (PREDICT, GET_MODEL_METADATA, GET_MODEL_STATUS):
        assert f"'{path}'" in stub_source
    assert PREDICT == "/tensorflow.serving.PredictionService/Predict"


_BOTH = """
import sys
def ours():
    from scann_serving.client import RetrievalClient
    from scann_serving.client._proto import tf_serving_pb2
    return tf_serving_pb2
def theirs():
    from tensorflow_serving.apis import predict_pb2, get_model_metadata_pb2
    return predict_pb2
first, second = (ours, theirs) if sys.argv[1] == "ours-first" else (theirs, ours)
a, b = first(), second()
pb, official = (a, b) if sys.argv[1] == "ours-first" else (b, a)
request = pb.PredictRequest()
request.model_spec.name = "m"
request.inputs["query"].string_val.append(b"42")
back = official.PredictRequest.FromString(request.SerializeToString())
assert back.inputs["query"].string_val == [b"42"], back
print("ok")
"""


@pytest.mark.parametrize("order", ["ours-first", "theirs-first"])
def test_importing_both_in_one_process(order: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BOTH, order], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_generated_code_matches_the_protos() -> None:
    # Regenerates with the pinned generator (uvx grpcio-tools) and compares byte for byte.
    done = subprocess.run(
        [sys.executable, str(REPO / "client/scripts/generate_protos.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_code_is_stamped_below_the_protobuf_floor() -> None:
    # protoc's runtime check refuses runtimes older than the stamp; the client allows 5.28.
    text = Path(tf_serving_pb2.__file__).read_text()
    assert "# Protobuf Python Version: 5.27.2" in text
    assert "_descriptor_pool.Default()" not in text
