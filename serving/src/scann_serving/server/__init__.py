"""scann_serving.server: `scann-serve`, a ScaNN model server with TensorFlow Serving's API.

Public surface: the `main` entry point, the frozen `ServerConfig` that flags become (with
its per-component parts `GrpcConfig`, `RestConfig`, `ModelsConfig`, `BatchingConfig`,
`TlsConfig`, `TensorFlowConfig`), the flag parser, and the domain error tree the core raises (mapped to gRPC/HTTP statuses).
"""

from scann_serving.server._cli import build_parser, config_from_args, main
from scann_serving.server._config import (
    BatchingConfig,
    ConfigError,
    GrpcConfig,
    ModelsConfig,
    RestConfig,
    ServerConfig,
    TensorFlowConfig,
    TlsConfig,
)
from scann_serving.server._errors import (
    HTTP_STATUS_BY_CODE,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServingError,
    Unavailable,
    Unimplemented,
)

__all__ = [
    "HTTP_STATUS_BY_CODE",
    "BatchingConfig",
    "ConfigError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "GrpcConfig",
    "Internal",
    "InvalidArgument",
    "ModelsConfig",
    "NotFound",
    "ResourceExhausted",
    "RestConfig",
    "ServerConfig",
    "ServingError",
    "TensorFlowConfig",
    "TlsConfig",
    "Unavailable",
    "Unimplemented",
    "build_parser",
    "config_from_args",
    "main",
]
