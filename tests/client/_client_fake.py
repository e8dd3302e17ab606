"""An in-process TF Serving stand-in built from the official tensorflow-serving-api stubs.

A seam fake for the client's unit tests: the servicers are `tensorflow_serving.apis`'
own generated base classes and every tensor goes through TensorFlow's own
`make_tensor_proto` / `make_ndarray`, so the client is checked against an independent
implementation of the protocol. The "model" is exact dot-product top-k over a small random
catalogue, with TF Serving's error behaviour (NOT_FOUND for unknown models/versions,
INVALID_ARGUMENT for unknown metadata fields or bad inputs).
"""

from __future__ import annotations

import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import struct_pb2
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

MODEL = "retrieval"
DIM = 4
DEFAULT_K = 5
MAX_K = 20
CATALOGUE = np.array([f"item_{i}" for i in range(50)])
EMBEDDINGS = np.random.default_rng(7).normal(size=(len(CATALOGUE), DIM)).astype(np.float32)


def query_embedding(key: str) -> np.ndarray:
    """The fake query tower: a deterministic vector per query key."""
    return np.random.default_rng(zlib.crc32(key.encode())).normal(size=DIM).astype(np.float32)


def top_k(embeddings: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[Any, Any]:
    """Exact top-k by dot product: (identifiers [batch, k], scores [batch, k])."""
    scores = embeddings @ EMBEDDINGS.T
    if exclude is not None:
        for row, excluded in enumerate(exclude):
            scores[row, np.isin(CATALOGUE, excluded)] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return CATALOGUE[order], np.take_along_axis(scores, order, axis=1)


def _info(name: str, dtype: int, dims: list[int]) -> meta_graph_pb2.TensorInfo:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=dtype, tensor_shape=shape)


def signature_defs(default_k_dim: int = -1) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The contract's four signatures, as the exporter's SavedModel declares them."""
    string, int32, float = types_pb2.DT_STRING, types_pb2.DT_INT32, types_pb2.DT_FLOAT
    outputs = {
        "identifiers": _info("identifiers", string, [-1, default_k_dim]),
        "scores": _info("scores", float, [-1, default_k_dim]),
    }
    query = _info("query", string, [-1])
    inputs = {
        "serving_default": {"query": query},
        "retrieve": {"query": query, "k": _info("k", int32, [])},
        "search_embedding": {"embedding": _info("embedding", float, [-1, DIM])},
        "retrieve_with_exclusions": {"query": query, "exclude": _info("exclude", string, [-1, -1])},
    }
    return {
        name: meta_graph_pb2.SignatureDef(
            inputs=ins, outputs=outputs, method_name="tensorflow/serving/predict"
        )
        for name, ins in inputs.items()
    }


@dataclass
class FakeState:
    """What the fake does next and what it has seen (reset between tests)."""

    versions: tuple[int, ...] = (1, 2)
    labels: dict[str, int] = field(default_factory=lambda: {"stable": 1})
    serve_manifest: bool = True
    default_k_dim: int = -1
    delay: float = 0.0
    failures: list[grpc.StatusCode] = field(default_factory=list)
    calls: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def methods(self) -> list[str]:
        """Names of the methods called so far, in order."""
        return [name for name, _, _ in self.calls]


class _Base:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    def _enter(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
        with self.state.lock:
            self.state.calls.append((name, request, dict(context.invocation_metadata())))
            failure = self.state.failures.pop(0) if self.state.failures else None
        if failure is not None:
            context.abort(failure, f"scripted {failure.name}")

    def _version(self, spec: Any, context: grpc.ServicerContext) -> int:
        if spec.name != MODEL:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})"
            )
        if spec.HasField("version"):
            if spec.version.value not in self.state.versions:
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found: {spec.version.value}"
                )
            return int(spec.version.value)
        if spec.version_label:
            if spec.version_label not in self.state.labels:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Unknown label {spec.version_label}")
            return self.state.labels[spec.version_label]
        return max(self.state.versions)


class PredictionServicer(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata over the fake catalogue."""

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("Predict", request, context)
        version = self._version(request.model_spec, context)
        if self.state.delay:
            time.sleep(self.state.delay)
        signature = request.model_spec.signature_name or "serving_default"
        inputs = {name: tf.make_ndarray(t) for name, t in request.inputs.items()}
        expected = (
            set(signature_defs()[signature].inputs) if signature in signature_defs() else None
        )
        if expected is None or set(inputs) != expected:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"bad inputs for {signature}: {sorted(inputs)}"
            )
        ids, scores = self._run(signature, inputs, context)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = MODEL
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature
        response.outputs["identifiers"].CopyFrom(tf.make_tensor_proto(ids.astype(bytes)))
        response.outputs["scores"].CopyFrom(tf.make_tensor_proto(scores.astype(np.float32)))
        return response

    def _run(self, signature: str, inputs: dict[str, Any], context: grpc.ServicerContext) -> Any:
        if signature == "search_embedding":
            return top_k(inputs["embedding"], DEFAULT_K)
        queries = np.stack([query_embedding(q.decode()) for q in inputs["query"]])
        if signature == "retrieve":
            k = int(inputs["k"])
            if not 1 <= k <= MAX_K:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "k must be between 1 and max_k")
            return top_k(queries, k)
        if signature == "retrieve_with_exclusions":
            exclude = inputs["exclude"].astype(str)
            return top_k(queries, DEFAULT_K, exclude)
        return top_k(queries, DEFAULT_K)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("GetModelMetadata", request, context)
        version = self._version(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = MODEL
        response.model_spec.version.value = version
        for name in request.metadata_field:
            if name == "signature_def":
                sig_map = get_model_metadata_pb2.SignatureDefMap()
                for key, sig in signature_defs(self.state.default_k_dim).items():
                    sig_map.signature_def[key].CopyFrom(sig)
                response.metadata["signature_def"].Pack(sig_map)
            elif name == "scann_manifest" and self.state.serve_manifest:
                manifest = struct_pb2.Struct()  # as scann-serve packs it
                manifest.update({"k": DEFAULT_K, "max_k": MAX_K, "embedding_dim": DIM})
                response.metadata[name].Pack(manifest)
            else:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {name} is not supported"
                )
        return response


class ModelServicer(_Base, model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus: every served version AVAILABLE."""

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("GetModelStatus", request, context)
        response = get_model_status_pb2.GetModelStatusResponse()
        wanted = (
            self._version(request.model_spec, context)
            if request.model_spec.HasField("version")
            else None
        )
        if request.model_spec.name != MODEL:
            self._version(request.model_spec, context)
        for version in self.state.versions:
            if wanted in (None, version):
                status = response.model_version_status.add(version=version)
                status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


def start(
    state: FakeState, credentials: grpc.ServerCredentials | None = None
) -> tuple[grpc.Server, int]:
    """Start the fake on a free loopback port; returns the server and the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(state), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(state), server)
    address = "127.0.0.1:0"
    port = (
        server.add_secure_port(address, credentials)
        if credentials
        else server.add_insecure_port(address)
    )
    server.start()
    return server, port
