"""Promise 6 — deadlines and limits.

A call with a tiny deadline gets DEADLINE_EXCEEDED (never an answer computed too late,
never another status) while other clients keep getting answers; a request over the server's message size limit (the shared server runs
with --grpc_channel_arguments=grpc.max_receive_message_length=1 MiB) gets
RESOURCE_EXHAUSTED and the server keeps serving.

Backend-independent (run on the native shared server only): the server checks a call's
deadline before it hands the call to a backend, and gRPC refuses the oversized message before
the server sees it.
"""

from __future__ import annotations

import time

import grpc
import pytest
from _rel_support import (
    MAX_BATCH,
    MAX_MESSAGE,
    Load,
    SharedServer,
    backend_independent,
    failures,
    prediction_stub,
)
from serve_helpers import predict_request

pytestmark = backend_independent

MODEL = "retrieval"
#: gRPC rounds deadlines up to whole milliseconds; a call of MAX_BATCH rows at k=50 does
#: far more work than fits in one, so it cannot finish in time.
TINY_DEADLINE = 0.0001


def _tiny_deadline_calls(shared: SharedServer, count: int) -> list[float]:
    """`count` heavy calls with a 0.1 ms deadline; returns how long each took to fail (for
    the report only: how fast depends on the machine's load)."""
    stub = prediction_stub(shared.channel)
    heavy = predict_request(MODEL, [str(i % 50 + 1) for i in range(MAX_BATCH)], k=50)
    assert (
        stub.Predict(heavy, timeout=60).outputs["identifiers"].tensor_shape.dim[0].size == MAX_BATCH
    )
    took = []
    for _ in range(count):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(heavy, timeout=TINY_DEADLINE)
        took.append(time.monotonic() - started)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, info.value.details()
    return took


def _run_deadlines(shared: SharedServer, count: int, clients: int) -> None:
    queries = [str(u) for u in range(1, 51)]
    with Load(shared.target, MODEL, clients, queries) as load:
        load.wait_for_calls(ok=clients, timeout=60)
        took = _tiny_deadline_calls(shared, count)
        load.wait_for_calls(ok=len(load.calls) + clients, timeout=60)
    calls = load.stop()
    slowest = max(took)
    failed = failures(calls)
    assert not failed, f"{len(failed)} of {len(calls)} normal calls failed: {failed[:3]}"
    print(
        f"{count} calls with a {TINY_DEADLINE * 1000:.1f} ms deadline: DEADLINE_EXCEEDED in "
        f"<= {slowest * 1000:.1f} ms; {len(calls)} normal calls alongside, 0 failed"
    )


def test_tiny_deadline_is_exceeded_promptly_others_unaffected(shared_server: SharedServer) -> None:
    """Fast variant: 20 tiny-deadline calls next to 2 normal clients."""
    _run_deadlines(shared_server, count=20, clients=2)


def test_message_over_size_limit_is_resource_exhausted(shared_server: SharedServer) -> None:
    """A request of 2 MiB against the 1 MiB limit; then the server still answers."""
    stub = prediction_stub(shared_server.channel)
    big = predict_request(MODEL, [b"1" * (2 * MAX_MESSAGE)])
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(big, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
    assert info.value.details(), "RESOURCE_EXHAUSTED without a message"
    reply = stub.Predict(predict_request(MODEL, ["1"]), timeout=10)
    assert reply.model_spec.name == MODEL
    assert shared_server.process.health() == "SERVING"
    under = stub.Predict(predict_request(MODEL, [b"1" * (MAX_MESSAGE // 2)]), timeout=10)
    assert under.model_spec.name == MODEL  # half the limit: accepted (an unknown query key)


@pytest.mark.slow
def test_deadlines_soak(shared_server: SharedServer) -> None:
    """Soak variant: 500 tiny-deadline calls next to 8 normal clients."""
    _run_deadlines(shared_server, count=500, clients=8)
