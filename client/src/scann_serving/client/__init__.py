"""scann_serving.client: a small, TensorFlow-free client for ScaNN retrieval models.

It speaks TensorFlow Serving's gRPC API (scann-serve or the TF Serving + ScaNN image) with
its own minimal protocol definitions, so callers need grpcio, protobuf and numpy only.

    >>> from scann_serving.client import RetrievalClient
    >>> with RetrievalClient("localhost:8500", model="retrieval") as client:
    ...     result = client.retrieve(["42"], k=10)
    ...     for identifier, score in next(result.rows()): ...

Errors are one tree rooted at `ScannServingError`; see `scann_serving.client._errors`.
The names an exported model, the server and this client share (signatures, tensors, the
manifest's path) are the constants of `scann_serving.client.contract`.
"""

from scann_serving.client import contract
from scann_serving.client._async_client import AsyncRetrievalClient
from scann_serving.client._base import BaseRetrievalClient
from scann_serving.client._client import RetrievalClient
from scann_serving.client._config import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_METADATA_TTL,
    DEFAULT_TIMEOUT,
    TLS,
    UNSET,
    Keepalive,
    RetryPolicy,
)
from scann_serving.client._errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    InvalidRequest,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ProtocolError,
    ResourceExhausted,
    RpcError,
    ScannServingError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    exception_class_for,
    from_grpc_error,
)
from scann_serving.client._types import (
    ModelMetadata,
    ModelStatus,
    RetrievalResult,
    Signature,
    TensorSpec,
    VersionStatus,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_METADATA_TTL",
    "DEFAULT_TIMEOUT",
    "TLS",
    "UNSET",
    "Aborted",
    "AlreadyExists",
    "AsyncRetrievalClient",
    "BaseRetrievalClient",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "InvalidRequest",
    "Keepalive",
    "ModelMetadata",
    "ModelStatus",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ProtocolError",
    "ResourceExhausted",
    "RetrievalClient",
    "RetrievalResult",
    "RetryPolicy",
    "RpcError",
    "ScannServingError",
    "Signature",
    "TensorSpec",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "VersionStatus",
    "contract",
    "exception_class_for",
    "from_grpc_error",
]
