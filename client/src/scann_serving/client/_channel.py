"""gRPC channels and the three methods the client calls, for sync and asyncio channels.

The method paths come from the service definitions in `_proto/tf_serving.proto`, so they
are TensorFlow Serving's (`/tensorflow.serving.PredictionService/Predict`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio
from scann_serving.client._config import TLS
from scann_serving.client._proto import tf_serving_pb2 as pb


def method_path(service: str, method: str) -> str:
    """`/package.Service/Method` for a method of one of the client's services."""
    descriptor = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


PREDICT: Final = method_path("PredictionService", "Predict")
GET_MODEL_METADATA: Final = method_path("PredictionService", "GetModelMetadata")
GET_MODEL_STATUS: Final = method_path("ModelService", "GetModelStatus")


def credentials(tls: TLS) -> grpc.ChannelCredentials:
    """Channel credentials for TLS (and mTLS when `tls` carries a client certificate)."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )


def sync_channel(target: str, tls: TLS | None, options: Sequence[tuple[str, Any]]) -> grpc.Channel:
    """A blocking channel, secure when `tls` is given."""
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials(tls), options=options)


def aio_channel(
    target: str, tls: TLS | None, options: Sequence[tuple[str, Any]]
) -> grpc.aio.Channel:
    """An asyncio channel, secure when `tls` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials(tls), options=options)


@dataclass(frozen=True)
class Stubs:
    """The client's three unary methods on one channel (sync or asyncio multi-callables)."""

    predict: Any
    get_model_metadata: Any
    get_model_status: Any

    @classmethod
    def on(cls, channel: grpc.Channel | grpc.aio.Channel) -> Stubs:
        """Bind the methods to `channel`."""

        def unary(path: str, request: Any, response: Any) -> Any:
            return channel.unary_unary(
                path,
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        return cls(
            predict=unary(PREDICT, pb.PredictRequest, pb.PredictResponse),
            get_model_metadata=unary(
                GET_MODEL_METADATA, pb.GetModelMetadataRequest, pb.GetModelMetadataResponse
            ),
            get_model_status=unary(
                GET_MODEL_STATUS, pb.GetModelStatusRequest, pb.GetModelStatusResponse
            ),
        )
