"""Fixtures for scann-serve tests: one real server per session, the official stubs, and
the same SavedModel loaded in-process to compare results against.

The shared `server` runs once per (--grpc_server_mode, --backend) variant: the tiny model
carries a native bundle, so `auto` serves it natively, and `tensorflow` runs its SavedModel;
every test on the fixture holds both backends to the same expectations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import GRPC_SERVER_MODES, ServerProcess

MODEL = "retrieval"


#: (--grpc_server_mode, --backend) of the shared servers: both gRPC adapters on the default
#: backend (native, for the tiny model), and the TensorFlow backend on the default adapter.
SERVER_VARIANTS = (
    *((mode, "auto") for mode in GRPC_SERVER_MODES),
    (GRPC_SERVER_MODES[0], "tensorflow"),
)


def _variant_id(variant: tuple[str, str]) -> str:
    return variant[0] if variant[1] == "auto" else f"{variant[0]}-{variant[1]}"


@pytest.fixture(scope="session", params=SERVER_VARIANTS, ids=_variant_id)
def server(
    request: pytest.FixtureRequest, tiny_server: ServerProcess, tiny_model_base: Path
) -> Iterator[ServerProcess]:
    """A shared scann-serve (gRPC + REST) over the tiny model, once per variant.

    ("threads", "auto") is the session's shared server (tests/conftest.py); the others are
    started here, so every test on this fixture checks both gRPC adapters and both backends
    against the same expectations. `server.backend` says which backend runs the model.
    """
    mode, backend = request.param
    if (mode, backend) == (GRPC_SERVER_MODES[0], "auto"):
        tiny_server.backend = "native"
        yield tiny_server
        return
    with ServerProcess(
        f"--grpc_server_mode={mode}",
        f"--backend={backend}",
        model_name=MODEL,
        model_base_path=tiny_model_base,
    ) as process:
        process.backend = "native" if backend == "auto" else backend
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
