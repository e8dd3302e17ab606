"""The exceptions `scann_serving.client` raises: one tree, rooted at `ScannServingError`.

    ScannServingError
    ├── InvalidRequest (also a ValueError)   bad arguments, caught before any call is made
    ├── ProtocolError                        a response that breaks the signature contract
    └── RpcError                             the server (or the channel) answered with a status
        ├── Cancelled            CANCELLED
        ├── Unknown              UNKNOWN
        ├── InvalidArgument      INVALID_ARGUMENT
        ├── DeadlineExceeded     DEADLINE_EXCEEDED
        ├── NotFound             NOT_FOUND          (unknown model, version or label)
        ├── AlreadyExists        ALREADY_EXISTS
        ├── PermissionDenied     PERMISSION_DENIED
        ├── ResourceExhausted    RESOURCE_EXHAUSTED (e.g. a response over the message limit)
        ├── FailedPrecondition   FAILED_PRECONDITION
        ├── Aborted              ABORTED
        ├── OutOfRange           OUT_OF_RANGE
        ├── Unimplemented        UNIMPLEMENTED
        ├── Internal             INTERNAL
        ├── Unavailable          UNAVAILABLE        (server down, after the retries)
        ├── DataLoss             DATA_LOSS
        └── Unauthenticated      UNAUTHENTICATED

Each `RpcError` class declares its `grpc_status_code`; `from_grpc_error` picks the class
from a registry built from those declarations (the pattern of google-api-core). gRPC
errors are translated in one place only, `translate_rpc_errors`, with `raise ... from exc`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc


class ScannServingError(Exception):
    """Base class of every error the client raises."""


class InvalidRequest(ScannServingError, ValueError):
    """The arguments cannot make a valid request; raised before anything is sent."""


class ProtocolError(ScannServingError):
    """The server's answer does not follow the retrieval signature contract."""


_REGISTRY: dict[grpc.StatusCode, type[RpcError]] = {}


class RpcError(ScannServingError):
    """The call ended with a non-OK gRPC status.

    Attributes:
        grpc_status_code: The status code this class stands for (`None` on the base class,
            which is only raised for codes no subclass claims).
        code: The status code the call actually ended with.
        details: The server's (or channel's) error message.
    """

    grpc_status_code: grpc.StatusCode | None = None

    def __init__(self, details: str, *, code: grpc.StatusCode | None = None) -> None:
        self.code = code if code is not None else self.grpc_status_code
        self.details = details
        name = self.code.name if self.code is not None else "UNKNOWN"
        super().__init__(f"{name}: {details}")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.grpc_status_code is not None:
            _REGISTRY.setdefault(cls.grpc_status_code, cls)


class Cancelled(RpcError):
    """The call was cancelled (usually by the caller)."""

    grpc_status_code = grpc.StatusCode.CANCELLED


class Unknown(RpcError):
    """The server failed without saying why."""

    grpc_status_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(RpcError):
    """The server rejected the request's contents (shape, dtype, k out of range, ...)."""

    grpc_status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(RpcError):
    """The call did not finish before its deadline."""

    grpc_status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(RpcError):
    """The model, version, label or signature is not served."""

    grpc_status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RpcError):
    """The thing to create exists already."""

    grpc_status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(RpcError):
    """The caller may not make this call."""

    grpc_status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(RpcError):
    """A quota or limit was hit (for example a message larger than the size limit)."""

    grpc_status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RpcError):
    """The server is not in a state to serve the call (for example a version still loading)."""

    grpc_status_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(RpcError):
    """The call was aborted (concurrency conflict)."""

    grpc_status_code = grpc.StatusCode.ABORTED


class OutOfRange(RpcError):
    """A value was outside the valid range."""

    grpc_status_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(RpcError):
    """The server does not implement this method (or this signature kind)."""

    grpc_status_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(RpcError):
    """The server hit an internal error."""

    grpc_status_code = grpc.StatusCode.INTERNAL


class Unavailable(RpcError):
    """The server could not be reached or is shutting down (raised after the retries)."""

    grpc_status_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(RpcError):
    """Unrecoverable data loss or corruption."""

    grpc_status_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(RpcError):
    """The call lacks valid credentials (for example a missing or wrong client certificate)."""

    grpc_status_code = grpc.StatusCode.UNAUTHENTICATED


def exception_class_for(code: grpc.StatusCode) -> type[RpcError]:
    """The exception class registered for a gRPC status code (`RpcError` if none is)."""
    return _REGISTRY.get(code, RpcError)


def from_grpc_error(error: grpc.RpcError) -> RpcError:
    """Build the matching `RpcError` subclass from a gRPC error (sync or asyncio)."""
    code_method = getattr(error, "code", None)
    details_method = getattr(error, "details", None)
    code = code_method() if callable(code_method) else grpc.StatusCode.UNKNOWN
    details = details_method() if callable(details_method) else None
    return exception_class_for(code)(details or str(error), code=code)


@contextmanager
def translate_rpc_errors() -> Iterator[None]:
    """The one seam where gRPC errors become `RpcError`s (`raise ... from` the original)."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_grpc_error(exc) from exc
