"""Prometheus metrics without a config file, reflection, and REST metrics path from a
--monitoring_config_file."""

from __future__ import annotations

from typing import Any

import numpy as np
import requests
import tensorflow as tf
from serve_helpers import ServerProcess
from tensorflow_serving.apis import predict_pb2

MODEL = "retrieval"


def test_request_metrics_by_model_version_signature_status(
    server: ServerProcess, predict_stub: Any
) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "serving_default"
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(np.asarray([b"1"], dtype=object)))
    predict_stub.Predict(request, timeout=10)
    requests.post(
        f"{server.rest_url}/v1/models/{MODEL}:predict", json={"instances": [1]}, timeout=10
    )
    text = requests.get(f"{server.rest_url}/monitoring/prometheus/metrics", timeout=10).text
    assert (
        'scann_serving_requests_total{model="retrieval",version="1",signature="serving_default",'
        'api="grpc",status="OK"}' in text
    )
    assert 'api="rest",status="INVALID_ARGUMENT"' in text
    assert "scann_serving_request_latency_seconds_bucket{" in text and 'le="+Inf"' in text
    assert (
        'scann_serving_model_loads_total{model="retrieval",version="1",result="success"} 1' in text
    )


def test_reflection_lists_services(channel: Any) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [reply] = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in reply.list_services_response.service}
    assert {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
    } <= names
