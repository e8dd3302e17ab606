"""End to end: the client against a real scann-serve subprocess over a real ScaNN model.

Results are compared with what the official tensorflow-serving-api stub gets from the same
server for the same request, and with brute force for the tiny model's exact index.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from scann_serving.client import (
    AsyncRetrievalClient,
    DeadlineExceeded,
    InvalidArgument,
    InvalidRequest,
    NotFound,
    RetrievalClient,
    RetryPolicy,
    Unavailable,
    from_grpc_error,
)
from serve_helpers import free_port, predict_request
from tensorflow_serving.apis import prediction_service_pb2_grpc

MODEL = "retrieval"
USERS = ["1", "7", "42"]


@pytest.fixture(scope="module")
def client(scann_serve):
    with RetrievalClient(scann_serve.target, model=MODEL, timeout=30) as c:
        yield c


def _official(server, signature: str, **inputs) -> tuple[np.ndarray, np.ndarray]:
    request = predict_request(MODEL, signature=signature, **inputs)
    with server.channel() as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
    ids = tf.make_ndarray(response.outputs["identifiers"]).astype(str)
    return ids, tf.make_ndarray(response.outputs["scores"])


def test_metadata_comes_from_the_served_model(client: RetrievalClient, tiny_spec) -> None:
    meta = client.metadata()
    assert meta.model_name == MODEL and meta.model_version == 1
    assert {"serving_default", "retrieve", "search_embedding", "retrieve_with_exclusions"} <= set(
        meta.signatures
    )
    assert meta.embedding_dim == tiny_spec.dim
    assert (meta.default_k, meta.max_k) == (10, 50)  # make_tiny_version's k and max_k
    assert meta.manifest["num_candidates"] == len(tiny_spec.identifiers)


def test_retrieve_matches_the_official_stub(client: RetrievalClient, scann_serve) -> None:
    result = client.retrieve(USERS)
    ids, scores = _official(scann_serve, "serving_default", query=np.array(USERS, dtype=object))
    assert result.identifiers.tolist() == ids.tolist()
    np.testing.assert_array_equal(result.scores, scores)
    assert (result.model_version, result.signature_name) == (1, "serving_default")

    result = client.retrieve(USERS, k=25)
    ids, scores = _official(
        scann_serve, "retrieve", query=np.array(USERS, dtype=object), k=np.int32(25)
    )
    assert result.identifiers.shape == (3, 25) and result.identifiers.tolist() == ids.tolist()


def test_retrieve_is_close_to_brute_force(client: RetrievalClient, tiny_spec) -> None:
    result = client.retrieve(USERS, k=10)
    truth, _ = tiny_spec.brute_force(USERS, 10)
    recall = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(result.identifiers, truth, strict=True)]
    )
    assert recall >= 0.8


def test_search_and_exclusions(client: RetrievalClient, scann_serve, tiny_spec) -> None:
    embeddings = tiny_spec.embed(USERS)
    result = client.search(embeddings, k=4)
    ids, _ = _official(scann_serve, "search_embedding", embedding=embeddings)
    assert result.identifiers.tolist() == ids[:, :4].tolist()
    plain = client.retrieve(USERS)
    seen = [row[:3].tolist() for row in plain.identifiers]
    excluded = client.retrieve(USERS, exclude=seen)
    for row, gone in zip(excluded.identifiers.tolist(), seen, strict=True):
        assert not set(row) & set(gone) and len(row) == 10


def test_status(client: RetrievalClient) -> None:
    status = client.status()
    assert status.available and status.latest_available == 1
    assert [(v.version, v.state) for v in status.versions] == [(1, "AVAILABLE")]


def test_k_bounds_checked_before_the_call_and_by_the_server(
    client: RetrievalClient, scann_serve
) -> None:
    with pytest.raises(InvalidRequest, match="max_k"):
        client.retrieve("1", k=51)
    # The server checks too (a request built by hand); its status maps to InvalidArgument.
    with pytest.raises(grpc.RpcError) as info:
        _official(scann_serve, "retrieve", query=np.array(["1"], dtype=object), k=np.int32(51))
    error = from_grpc_error(info.value)
    assert type(error) is InvalidArgument and "max_k" in error.details


def test_many_concurrent_calls_from_threads(client: RetrievalClient) -> None:
    expected = {u: client.retrieve(u, k=5).identifiers.tolist() for u in USERS}
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(
            pool.map(lambda i: (USERS[i % 3], client.retrieve(USERS[i % 3], k=5)), range(120))
        )
    assert all(result.identifiers.tolist() == expected[user] for user, result in got)


async def _async_many(target: str, n: int) -> list:
    async with AsyncRetrievalClient(target, model=MODEL, timeout=30) as c:
        return await asyncio.gather(*(c.retrieve(USERS[i % 3], k=5) for i in range(n)))


def test_async_many_concurrent_calls(client: RetrievalClient, scann_serve) -> None:
    # Own event loop: grpc.aio channels belong to the loop they were made in.
    results = asyncio.run(_async_many(scann_serve.target, 200))
    expected = {u: client.retrieve(u, k=5).identifiers.tolist() for u in USERS}
    assert [r.identifiers.tolist() for r in results] == [expected[USERS[i % 3]] for i in range(200)]


def test_unknown_model_is_not_found(scann_serve) -> None:
    with RetrievalClient(scann_serve.target, model="no-such-model") as c:
        with pytest.raises(NotFound, match="no-such-model"):
            c.retrieve("1")
        with pytest.raises(NotFound):
            c.status()
    with RetrievalClient(scann_serve.target, model=MODEL) as c, pytest.raises(NotFound):
        c.retrieve("1", version=99)


def test_deadline_exceeded(client: RetrievalClient) -> None:
    client.metadata()
    with pytest.raises(DeadlineExceeded):
        client.retrieve(USERS * 100, k=50, timeout=1e-4)


def test_server_down_is_unavailable_after_retries() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=0.5)
    # Unavailable, not DeadlineExceeded: the retries end before the generous deadline.
    client = RetrievalClient(f"127.0.0.1:{free_port()}", model=MODEL, retry=policy, timeout=120)
    with client as c, pytest.raises(Unavailable):
        c.retrieve("1")


def test_scann_query_against_the_server(scann_serve, client: RetrievalClient) -> None:
    exe = Path(sys.executable).with_name("scann-query")
    argv = ["--target", scann_serve.target, "--model", MODEL, "--wait", "30"]
    done = subprocess.run(
        [exe, *argv, "--query", "1", "7", "-k", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(done.stdout)["identifiers"]
        == client.retrieve(["1", "7"], k=3).identifiers.tolist()
    )
    table = subprocess.run(
        [exe, *argv, "--query", "42"], capture_output=True, text=True, timeout=120
    )
    assert table.returncode == 0 and table.stdout.splitlines()[3].split() == [
        "rank",
        "identifier",
        "score",
    ]
    missing = subprocess.run(
        [exe, *argv[:2], "--model", "nope", "--query", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and missing.stderr.startswith("scann-query: error: NotFound:")
