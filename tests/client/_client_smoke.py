"""Smoke run of the installed client without TensorFlow (run by test_client_install.py).

Serves the fake model with the client's own messages through grpc's generic handlers,
then calls it with the sync and asyncio clients. Prints one JSON line of facts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from concurrent import futures
from importlib import metadata

import grpc
import numpy as np
from scann_serving.client import AsyncRetrievalClient, NotFound, RetrievalClient
from scann_serving.client._proto import tf_framework_pb2 as fw
from scann_serving.client._proto import tf_serving_pb2 as pb


def _signature_map() -> pb.SignatureDefMap:
    sig_map = pb.SignatureDefMap()
    query = fw.TensorInfo(name="query:0", dtype=fw.DT_STRING)
    query.tensor_shape.dim.add(size=-1)
    for name in ("serving_default", "retrieve"):
        sig = sig_map.signature_def[name]
        sig.inputs["query"].CopyFrom(query)
        if name == "retrieve":
            sig.inputs["k"].CopyFrom(fw.TensorInfo(name="k:0", dtype=fw.DT_INT32))
    return sig_map


def _metadata(request: pb.GetModelMetadataRequest, context: grpc.ServicerContext):
    if request.model_spec.name != "m":
        context.abort(grpc.StatusCode.NOT_FOUND, "Servable not found")
    response = pb.GetModelMetadataResponse()
    response.model_spec.name = "m"
    response.metadata["signature_def"].Pack(_signature_map())
    return response


def _predict(request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
    queries = list(request.inputs["query"].string_val)
    k = request.inputs["k"].int_val[0] if "k" in request.inputs else 2
    response = pb.PredictResponse()
    response.model_spec.name = "m"
    response.model_spec.version.value = 1
    ids = response.outputs["identifiers"]
    ids.dtype = fw.DT_STRING
    ids.tensor_shape.dim.add(size=len(queries))
    ids.tensor_shape.dim.add(size=k)
    ids.string_val.extend(q + b"-" + str(i).encode() for q in queries for i in range(k))
    scores = response.outputs["scores"]
    scores.CopyFrom(fw.TensorProto(dtype=fw.DT_FLOAT, float_val=[0.5]))
    scores.tensor_shape.CopyFrom(ids.tensor_shape)
    return response


def _handler(method, request_type, response_type) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


def serve() -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Predict": _handler(_predict, pb.PredictRequest, pb.PredictResponse),
        "GetModelMetadata": _handler(
            _metadata, pb.GetModelMetadataRequest, pb.GetModelMetadataResponse
        ),
    }
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", handlers)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


async def _async_call(target: str) -> list[list[str]]:
    async with AsyncRetrievalClient(target, model="m") as client:
        return (await client.retrieve(["b"], k=3)).identifiers.tolist()


def main() -> None:
    server, port = serve()
    target = f"127.0.0.1:{port}"
    with RetrievalClient(target, model="m") as client:
        result = client.retrieve(["a", "b"])
        try:
            RetrievalClient(target, model="x").metadata()
            not_found = False
        except NotFound:
            not_found = True
    facts = {
        "identifiers": result.identifiers.tolist(),
        "scores": np.asarray(result.scores).tolist(),
        "async": asyncio.run(_async_call(target)),
        "not_found": not_found,
        "versions": {d: metadata.version(d) for d in ("protobuf", "grpcio", "numpy")},
        "tensorflow_imported": any(m.startswith("tensorflow") for m in sys.modules),
    }
    server.stop(grace=None)
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
