"""The Batcher in process over a fake model version: merging, splitting, keys, the queue
limit, deadlines and cancellation while queued, model errors and stop. No TensorFlow.

Each test first parks one "blocker" call inside the model (its run gate is closed), so
whatever the test submits next is known to be queued together when the gate opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from _fake_servable import FAKE_K, FakeServable, Gate, answer, publish_version, queries
from _inprocess_harness import Harness, ShiftedClock, call, metric_value
from scann_serving.server import _batching
from scann_serving.server._batching import Batcher
from scann_serving.server._errors import DeadlineExceeded, Internal, InvalidArgument, Unavailable


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path) as h:
        yield h


@pytest.fixture
def servable(harness: Harness, tmp_path: Path) -> FakeServable:
    return FakeServable("fake", 1, tmp_path, run_gate=harness.loader.run_gate)


def submit(
    batcher: Batcher,
    servable: FakeServable,
    inputs: dict[str, np.ndarray],
    *,
    signature: str = "",
    deadline: float | None = None,
) -> Future[dict[str, np.ndarray]]:
    """What the core does for one call: pick the signature, validate, queue."""
    sig = servable.signature(signature)
    return batcher.submit(servable, sig, inputs, servable.validate(sig, inputs), None, deadline)


def park_blocker(batcher: Batcher, servable: FakeServable) -> Future[dict[str, np.ndarray]]:
    """Holds the (single) batch worker inside the model until the run gate opens."""
    gate: Gate = servable.run_gate
    gate.close()
    blocker = submit(batcher, servable, queries("blocker"))
    gate.wait_held(1)
    return blocker


def ids(future: Future[dict[str, np.ndarray]]) -> list[list[bytes]]:
    return list(future.result(timeout=10)["identifiers"].tolist())


def expected(*values: str, k: int = FAKE_K) -> list[list[bytes]]:
    return [answer(v.encode(), k, 1)[0] for v in values]


def test_queued_calls_merge_into_one_run_and_each_gets_its_own_rows(
    harness: Harness, servable: FakeServable
) -> None:
    batcher = harness.batcher(max_batch_size=8)
    blocker = park_blocker(batcher, servable)
    futures = {
        ("a",): submit(batcher, servable, queries("a")),
        ("b", "c"): submit(batcher, servable, queries("b", "c")),
        ("d",): submit(batcher, servable, queries("d")),
    }
    servable.run_gate.open()

    for values, future in futures.items():
        assert ids(future) == expected(*values)
        assert future.result()["scores"].shape == (len(values), FAKE_K)
    assert ids(blocker) == expected("blocker")
    assert servable.run_rows() == [[b"blocker"], [b"a", b"b", b"c", b"d"]]
    assert metric_value(harness.metrics, "batch_size_count") == 2
    assert metric_value(harness.metrics, "batch_size_sum") == 5


def test_concurrent_callers_through_the_core_each_get_exactly_their_rows(
    harness: Harness,
) -> None:
    publish_version(harness.base, 1)
    core = harness.core(harness.batcher(max_batch_size=16))
    callers = {
        f"q{i}": harness.in_thread(core.predict, call(queries(f"q{i}", f"r{i}"))) for i in range(8)
    }

    for name, future in callers.items():
        result = future.result(timeout=10)
        assert result.outputs["identifiers"].tolist() == expected(name, "r" + name[1:])
    runs = harness.loader.servables[("fake", 1)].run_rows()
    assert sorted(row for run in runs for row in run) == sorted(
        f"{p}{i}".encode() for p in "qr" for i in range(8)
    )  # every row computed exactly once, however the calls were merged


def test_a_run_never_exceeds_max_batch_size(harness: Harness, servable: FakeServable) -> None:
    batcher = harness.batcher(max_batch_size=4)
    park_blocker(batcher, servable)
    three = submit(batcher, servable, queries("a", "b", "c"))
    two = submit(batcher, servable, queries("d", "e"))
    one = submit(batcher, servable, queries("f"))
    servable.run_gate.open()

    assert (ids(three), ids(two), ids(one)) == (
        expected("a", "b", "c"),
        expected("d", "e"),
        expected("f"),
    )
    assert servable.run_rows() == [[b"blocker"], [b"a", b"b", b"c"], [b"d", b"e", b"f"]]


def test_calls_with_different_k_run_separately(harness: Harness, servable: FakeServable) -> None:
    batcher = harness.batcher(max_batch_size=8)
    park_blocker(batcher, servable)

    def retrieve(value: str, k: int) -> Future[dict[str, np.ndarray]]:
        inputs = {**queries(value), "k": np.array(k, np.int32)}
        return submit(batcher, servable, inputs, signature="retrieve")

    a2, b3, c2 = retrieve("a", 2), retrieve("b", 3), retrieve("c", 2)
    servable.run_gate.open()

    assert (ids(a2), ids(b3), ids(c2)) == (
        expected("a", k=2),
        expected("b", k=3),
        expected("c", k=2),
    )
    assert sorted(servable.run_rows()[1:]) == [[b"a", b"c"], [b"b"]]


def test_full_queue_is_unavailable_and_says_which_queue(
    harness: Harness, servable: FakeServable
) -> None:
    batcher = harness.batcher(max_batch_size=2, max_enqueued_batches=2)  # 4 rows may wait
    park_blocker(batcher, servable)
    waiting = [
        submit(batcher, servable, queries("a", "b")),
        submit(batcher, servable, queries("c", "d")),
    ]

    with pytest.raises(Unavailable, match=r"batch scheduling queue .* is full"):
        submit(batcher, servable, queries("e"))
    assert metric_value(harness.metrics, "batch_queue_rejections_total") == 1

    servable.run_gate.open()
    assert [ids(f) for f in waiting] == [expected("a", "b"), expected("c", "d")]
    assert ids(submit(batcher, servable, queries("e"))) == expected("e")  # room again


def test_call_larger_than_max_batch_size_is_invalid_argument(
    harness: Harness, servable: FakeServable
) -> None:
    batcher = harness.batcher(max_batch_size=2)
    with pytest.raises(
        InvalidArgument, match="Task size 3 is larger than maximum input batch size 2"
    ):
        submit(batcher, servable, queries("a", "b", "c"))
    assert metric_value(harness.metrics, "batch_queue_rejections_total") == 0
    assert servable.batches == []


def test_deadline_passing_while_queued_is_answered_and_never_run(
    harness: Harness, servable: FakeServable, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ShiftedClock()
    monkeypatch.setattr(_batching, "time", clock)
    batcher = harness.batcher(max_batch_size=8)
    park_blocker(batcher, servable)
    late = submit(batcher, servable, queries("late"), deadline=clock.monotonic() + 10.0)
    live = submit(batcher, servable, queries("live"), deadline=clock.monotonic() + 60.0)
    clock.advance(20.0)  # while both wait behind the blocker
    servable.run_gate.open()

    with pytest.raises(DeadlineExceeded, match="while queued for batching; not computed"):
        late.result(timeout=10)
    assert ids(live) == expected("live")
    assert servable.run_rows() == [[b"blocker"], [b"live"]]


def test_call_cancelled_while_queued_is_never_run(harness: Harness, servable: FakeServable) -> None:
    batcher = harness.batcher(max_batch_size=8)
    park_blocker(batcher, servable)
    gone = submit(batcher, servable, queries("gone"))
    kept = submit(batcher, servable, queries("kept"))
    assert gone.cancel()
    servable.run_gate.open()

    assert ids(kept) == expected("kept")
    assert servable.run_rows() == [[b"blocker"], [b"kept"]]


def test_model_error_reaches_every_caller_of_the_run(
    harness: Harness, servable: FakeServable
) -> None:
    batcher = harness.batcher(max_batch_size=8)
    park_blocker(batcher, servable)
    innocent = submit(batcher, servable, queries("ok"))
    culprit = submit(batcher, servable, queries("fail"))
    servable.run_gate.open()

    for future in (innocent, culprit):
        with pytest.raises(Internal, match="asked to fail"):
            future.result(timeout=10)
    assert ids(submit(batcher, servable, queries("after"))) == expected("after")


def test_stop_finishes_what_is_queued_and_refuses_new_calls(
    harness: Harness, servable: FakeServable
) -> None:
    batcher = harness.batcher(max_batch_size=8)
    park_blocker(batcher, servable)
    queued = submit(batcher, servable, queries("queued"))
    batcher.stop()
    servable.run_gate.open()

    assert ids(queued) == expected("queued")
    with pytest.raises(Unavailable):
        submit(batcher, servable, queries("too late"))
