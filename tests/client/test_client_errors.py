"""The exception tree: every gRPC status code maps to its class, at one seam."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest
import scann_serving.client as sc
from _client_fake import MODEL, FakeState
from scann_serving.client import (
    RetrievalClient,
    RpcError,
    ScannServingError,
    exception_class_for,
    from_grpc_error,
)

CLIENT_SRC = Path(sc.__file__).parent


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_every_status_code_maps(code: grpc.StatusCode) -> None:
    error = from_grpc_error(_FakeRpcError(code, "boom"))
    assert isinstance(error, RpcError) and isinstance(error, ScannServingError)
    assert error.code is code and error.details == "boom"
    assert code.name in str(error)
    if code is grpc.StatusCode.OK:  # never an error: falls back to the base class
        assert type(error) is RpcError
    else:
        assert type(error).grpc_status_code is code
        assert type(error) is not RpcError


def test_each_class_claims_one_distinct_code() -> None:
    classes = [
        c
        for c in vars(sc).values()
        if isinstance(c, type) and issubclass(c, RpcError) and c is not RpcError
    ]
    codes = [c.grpc_status_code for c in classes]
    assert len(codes) == len(set(codes)) == len(grpc.StatusCode) - 1
    assert all(exception_class_for(c.grpc_status_code) is c for c in classes)


def test_names_follow_the_status_codes() -> None:
    assert exception_class_for(grpc.StatusCode.NOT_FOUND) is sc.NotFound
    assert exception_class_for(grpc.StatusCode.UNAVAILABLE) is sc.Unavailable
    assert exception_class_for(grpc.StatusCode.DEADLINE_EXCEEDED) is sc.DeadlineExceeded
    assert exception_class_for(grpc.StatusCode.INVALID_ARGUMENT) is sc.InvalidArgument


@pytest.mark.parametrize(
    "code",
    [c for c in grpc.StatusCode if c not in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)],
    ids=lambda c: c.name,
)
def test_server_status_reaches_the_caller_as_its_class(
    client: RetrievalClient, fake: FakeState, code: grpc.StatusCode
) -> None:
    fake.failures = [code]
    with pytest.raises(exception_class_for(code)) as info:
        client.status()
    assert info.value.details == f"scripted {code.name}"
    assert isinstance(info.value.__cause__, grpc.RpcError)  # raise ... from exc
    assert fake.methods() == ["GetModelStatus"]  # only UNAVAILABLE is retried


def test_grpc_errors_are_translated_at_one_seam() -> None:
    # Only _errors.py catches grpc.RpcError; the clients go through translate_rpc_errors.
    catching = []
    for path in CLIENT_SRC.rglob("*.py"):
        if "_proto" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ExceptHandler) or node.type is None:
                continue
            handled = ast.unparse(node.type)
            if "grpc" in handled and "RpcError" in handled:
                catching.append(path.name)
    assert catching == ["_errors.py"]


def test_invalid_request_is_a_value_error_and_not_an_rpc_error() -> None:
    assert issubclass(sc.InvalidRequest, ValueError)
    assert issubclass(sc.InvalidRequest, ScannServingError)
    assert not issubclass(sc.InvalidRequest, RpcError)
    assert issubclass(sc.ProtocolError, ScannServingError)


def test_model_name_in_fake_is_the_default() -> None:
    assert MODEL == "retrieval"
