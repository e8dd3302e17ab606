"""--enable_batching merges concurrent requests (results still exact per request), a full
queue answers UNAVAILABLE, deadlines are honoured and message limits give RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from serve_helpers import GRPC_SERVER_MODES, ServerProcess, predict_request
from tensorflow_serving.apis import prediction_service_pb2_grpc

MODEL = "retrieval"
BATCHING = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 20000 }
num_batch_threads { value: 1 }
max_enqueued_batches { value: 4 }
"""


@pytest.fixture(scope="module", params=GRPC_SERVER_MODES)
def batching_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_base: Path,
) -> Iterator[ServerProcess]:
    params = tmp_path_factory.mktemp("batching") / "batching.txt"
    params.write_text(BATCHING)
    flags = [
        f"--grpc_server_mode={request.param}",
        "--enable_batching",
        f"--batching_parameters_file={params}",
        "--grpc_channel_arguments=grpc.max_receive_message_length=65536",
        "--grpc_max_threads=64",
    ]
    with ServerProcess(*flags, model_name=MODEL, model_base_path=tiny_model_base) as server:
        yield server


def _request(queries: list[bytes], signature: str = "serving_default") -> Any:
    return predict_request(MODEL, queries, signature=signature)


def test_concurrent_requests_are_merged_and_exact(
    batching_server: ServerProcess, saved_model: Any
) -> None:
    users = [str(i).encode() for i in range(1, 33)]
    with batching_server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda u: stub.Predict(_request([u]), timeout=10), users))
    expected = saved_model.signatures["serving_default"](query=tf.constant(users))[
        "identifiers"
    ].numpy()
    for row, reply in enumerate(replies):
        np.testing.assert_array_equal(
            tf.make_ndarray(reply.outputs["identifiers"])[0], expected[row]
        )
    metrics = requests.get(
        f"{batching_server.rest_url}/monitoring/prometheus/metrics", timeout=10
    ).text
    count = next(
        line for line in metrics.splitlines() if line.startswith("scann_serving_batch_size_count")
    )
    warmup_calls = 10  # warmup requests run unbatched, so every counted batch is a served one
    assert int(float(count.split()[-1])) < len(users), (
        f"no merging happened: {count} ({warmup_calls})"
    )


def test_full_queue_answers_unavailable(batching_server: ServerProcess) -> None:
    """A burst larger than the queue bound (4 batches x 8 rows) gets some calls refused.

    How many arrive before the one batch thread drains the queue depends on the machine's
    load, so the burst is repeated (up to a deadline) until one is refused; the calls' own
    deadline is generous so that only the queue bound can refuse them.
    """

    async def burst() -> list[Any]:
        async with grpc.aio.insecure_channel(batching_server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            calls = [stub.Predict(_request([b"1"] * 8), timeout=120) for _ in range(200)]
            return await asyncio.gather(*calls, return_exceptions=True)

    deadline = time.monotonic() + 120
    refused: list[Any] = []
    while not refused:
        assert time.monotonic() < deadline, "the queue bound never refused a call"
        results = asyncio.run(burst())
        errors = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(r, grpc.aio.AioRpcError) for r in errors), errors[:3]
        refused = errors
    assert {r.code() for r in refused} == {grpc.StatusCode.UNAVAILABLE}
    assert "queue" in refused[0].details()
    assert len(refused) < len(results)


def test_oversized_batch_is_invalid(batching_server: ServerProcess) -> None:
    with batching_server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_request([b"1"] * 9), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "maximum input batch size 8" in info.value.details()


def test_tiny_deadline_and_others_unaffected(batching_server: ServerProcess) -> None:
    with batching_server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_request([b"1"]), timeout=0.001)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert stub.Predict(_request([b"1"]), timeout=10).model_spec.version.value == 1


def test_message_over_limit_is_resource_exhausted(batching_server: ServerProcess) -> None:
    with batching_server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_request([b"x" * 100_000]), timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.Predict(_request([b"1"]), timeout=10).model_spec.version.value == 1
