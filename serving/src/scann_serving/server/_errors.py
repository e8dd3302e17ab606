"""Domain errors of the serving core, and the one table that maps them to wire statuses.

The core raises these; the gRPC and REST adapters translate them at exactly one seam
each (`status_for`), so a status code is decided in one place::

    ServingError                 (INTERNAL, 500)
    ├── InvalidArgument          (INVALID_ARGUMENT, 400)  bad input: dtype, shape, k, UTF-8, NaN
    ├── FailedPrecondition       (FAILED_PRECONDITION, 400)  e.g. unknown signature (as TF Serving)
    ├── NotFound                 (NOT_FOUND, 404)  unknown model or version
    ├── Unavailable              (UNAVAILABLE, 503)  draining, batch queue full
    ├── DeadlineExceeded         (DEADLINE_EXCEEDED, 504)  expired before it was computed
    ├── ResourceExhausted        (RESOURCE_EXHAUSTED, 429)
    ├── Unimplemented            (UNIMPLEMENTED, 501)
    └── Internal                 (INTERNAL, 500)  a bug or a model that failed at run time
"""

from __future__ import annotations

from typing import ClassVar

#: gRPC status code name -> HTTP status, as TF Serving's REST server maps them
#: (tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode).
HTTP_STATUS_BY_CODE: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

#: gRPC status code name -> numeric code (google.rpc.Code / tensorflow.error.Code).
NUMERIC_CODE: dict[str, int] = {name: number for number, name in enumerate(HTTP_STATUS_BY_CODE)}


class ServingError(Exception):
    """Base of the core's errors; `code` names the gRPC status it answers with."""

    code: ClassVar[str] = "INTERNAL"

    @property
    def message(self) -> str:
        """The human-readable message (what was wrong and how to fix it)."""
        return str(self.args[0]) if self.args else self.code

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers for this error."""
        return HTTP_STATUS_BY_CODE[self.code]


class InvalidArgument(ServingError):
    """The request is malformed: wrong dtype/shape, empty batch, k out of range, ..."""

    code = "INVALID_ARGUMENT"


class FailedPrecondition(ServingError):
    """The request cannot run against this servable (e.g. unknown signature)."""

    code = "FAILED_PRECONDITION"


class NotFound(ServingError):
    """Unknown model, or no such (available) version."""

    code = "NOT_FOUND"


class Unavailable(ServingError):
    """The server cannot take the call now (shutting down, batch queue full); retry later."""

    code = "UNAVAILABLE"


class DeadlineExceeded(ServingError):
    """The caller's deadline passed before the request was computed."""

    code = "DEADLINE_EXCEEDED"


class ResourceExhausted(ServingError):
    """A limit was exceeded."""

    code = "RESOURCE_EXHAUSTED"


class Unimplemented(ServingError):
    """The method or feature is not implemented."""

    code = "UNIMPLEMENTED"


class Internal(ServingError):
    """An unexpected failure inside the server or the model."""

    code = "INTERNAL"


def status_for(exc: BaseException) -> tuple[str, int, str]:
    """(gRPC code name, HTTP status, message) for any exception; unknown ones are INTERNAL."""
    if isinstance(exc, ServingError):
        return exc.code, exc.http_status, exc.message
    return "INTERNAL", 500, f"internal error: {type(exc).__name__}: {exc}"
