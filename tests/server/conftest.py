"""Fixtures for scann-serve tests: one real server per session, the official stubs, and
the same SavedModel loaded in-process to compare results against.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import ServerProcess

MODEL = "retrieval"


@pytest.fixture(scope="session")
def server(tiny_server: ServerProcess) -> ServerProcess:
    """The session's shared scann-serve (gRPC + REST) over the tiny model (tests/conftest.py)."""
    return tiny_server


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
