"""Fixtures for scann-serve tests: one real server per session, the official stubs, and
the same SavedModel loaded in-process to compare results against.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import GRPC_SERVER_MODES, ServerProcess

MODEL = "retrieval"


@pytest.fixture(scope="session", params=GRPC_SERVER_MODES)
def server(
    request: pytest.FixtureRequest, tiny_server: ServerProcess, tiny_model_base: Path
) -> Iterator[ServerProcess]:
    """A shared scann-serve (gRPC + REST) over the tiny model, once per --grpc_server_mode.

    "threads" is the session's shared server (tests/conftest.py); "asyncio" is started here,
    so every test on this fixture checks both gRPC adapters against the same expectations.
    """
    if request.param == "threads":
        yield tiny_server
        return
    with ServerProcess(
        f"--grpc_server_mode={request.param}", model_name=MODEL, model_base_path=tiny_model_base
    ) as process:
        yield process


@pytest.fixture(scope="session")
def channel(server: ServerProcess) -> Iterator[Any]:
    """A grpc channel to the shared server."""
    with server.channel() as ch:
        yield ch


@pytest.fixture(scope="session")
def predict_stub(channel: Any) -> Any:
    """tensorflow_serving's PredictionServiceStub on the shared server."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def model_stub(channel: Any) -> Any:
    """tensorflow_serving's ModelServiceStub on the shared server."""
    from tensorflow_serving.apis import model_service_pb2_grpc

    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="session")
def saved_model(tiny_model_base: Path) -> Any:
    """The tiny model's version 1 loaded in this process (the reference results)."""
    import tensorflow as tf
    from scann.scann_ops.py import scann_ops  # noqa: F401  (registers the Scann ops)

    return tf.saved_model.load(str(tiny_model_base / "1"))
