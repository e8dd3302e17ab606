"""Fixtures for the client tests: the official-stub fake server, and clients bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import _client_fake as _fake_server
import pytest
from _client_fake import FakeState
from scann_serving.client import AsyncRetrievalClient, RetrievalClient


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[FakeState, int]]:
    """One fake TF Serving for the session: (its state, its port)."""
    state = FakeState()
    server, port = _fake_server.start(state)
    yield state, port
    server.stop(grace=None)


@pytest.fixture
def fake(fake_server: tuple[FakeState, int]) -> FakeState:
    """The fake's state, reset to defaults for this test."""
    state, _ = fake_server
    fresh = FakeState()
    for name in (
        "versions",
        "labels",
        "serve_manifest",
        "default_k_dim",
        "delay",
        "failures",
        "calls",
    ):
        setattr(state, name, getattr(fresh, name))
    return state


@pytest.fixture
def target(fake_server: tuple[FakeState, int]) -> str:
    """The fake's gRPC target."""
    return f"127.0.0.1:{fake_server[1]}"


@pytest.fixture
def client(fake: FakeState, target: str) -> Iterator[RetrievalClient]:
    """A sync client for the fake's model."""
    with RetrievalClient(target, model=_fake_server.MODEL, timeout=10) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeState, target: str) -> AsyncIterator[AsyncRetrievalClient]:
    """An asyncio client for the fake's model."""
    async with AsyncRetrievalClient(target, model=_fake_server.MODEL, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def scann_serve(tiny_server):
    """The session's shared real scann-serve over the tiny ScaNN model (tests/conftest.py)."""
    return tiny_server
