"""AsyncRetrievalClient: the same behaviour as the sync client, awaited, and concurrent."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from _client_fake import DEFAULT_K, DIM, MODEL, FakeState, query_embedding, top_k
from scann_serving.client import (
    AsyncRetrievalClient,
    DeadlineExceeded,
    InvalidRequest,
    NotFound,
    RetrievalClient,
)

# The client fixture lives on the session's event loop (pyproject: fixture loop scope).
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_retrieve_search_metadata_status(
    aclient: AsyncRetrievalClient, fake: FakeState
) -> None:
    result = await aclient.retrieve(["42", "7"], k=4)
    assert (
        result.identifiers.tolist()
        == top_k(np.stack([query_embedding("42"), query_embedding("7")]), 4)[0].tolist()
    )
    assert (await aclient.search(np.ones((2, DIM)))).identifiers.shape == (2, DEFAULT_K)
    assert (await aclient.metadata()).embedding_dim == DIM
    assert (await aclient.status()).latest_available == 2
    excluded = await aclient.retrieve("42", exclude=[result.identifiers[0, 0]])
    assert result.identifiers[0, 0] not in excluded.identifiers


async def test_same_answers_as_the_sync_client(aclient: AsyncRetrievalClient, target: str) -> None:
    with RetrievalClient(target, model=MODEL) as sync:
        expected = sync.retrieve(["1", "2", "3"], k=6)
    got = await aclient.retrieve(["1", "2", "3"], k=6)
    assert got.identifiers.tolist() == expected.identifiers.tolist()
    np.testing.assert_array_equal(got.scores, expected.scores)


async def test_many_concurrent_calls(aclient: AsyncRetrievalClient, fake: FakeState) -> None:
    keys = [str(i) for i in range(200)]
    results = await asyncio.gather(*(aclient.retrieve(key, k=3) for key in keys))
    for key, result in zip(keys, results, strict=True):
        assert result.identifiers.tolist() == top_k(query_embedding(key)[None], 3)[0].tolist()
    assert fake.methods().count("Predict") == 200
    assert fake.methods().count("GetModelMetadata") == 1  # concurrent first calls share it


async def test_errors_deadlines_and_retries(
    aclient: AsyncRetrievalClient, fake: FakeState, target: str
) -> None:
    with pytest.raises(InvalidRequest):
        await aclient.retrieve([])
    async with AsyncRetrievalClient(target, model="nope") as other:
        with pytest.raises(NotFound):
            await other.retrieve("1")
    fake.failures = [grpc.StatusCode.UNAVAILABLE]
    assert (await aclient.status()).available
    assert fake.methods()[-2:] == ["GetModelStatus", "GetModelStatus"]
    fake.delay = 0.5
    with pytest.raises(DeadlineExceeded) as info:
        await aclient.retrieve("1", timeout=0.1)
    assert isinstance(info.value.__cause__, grpc.aio.AioRpcError)
    assert len(await aclient.retrieve("1", timeout=None)) == 1
