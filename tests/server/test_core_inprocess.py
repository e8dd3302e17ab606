"""ServingCore in process over a fake model version: admission while draining, deadlines,
the asyncio path, metadata/status/reload and the request metrics. No TensorFlow."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _fake_servable import FAKE_K, answer, publish_version, queries
from _inprocess_harness import MODEL, Harness, ShiftedClock, call, metric_value
from scann_serving.server import _core
from scann_serving.server._core import (
    DRAIN_ADMIT_SECONDS,
    METHOD_CLASSIFY,
    METHOD_PREDICT,
    ModelRef,
)
from scann_serving.server._errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from tensorflow_serving.config import model_server_config_pb2


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path) as h:
        publish_version(h.base, 1)
        yield h


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedClock:
    """The core's clock, which the test moves forward."""
    shifted = ShiftedClock()
    monkeypatch.setattr(_core, "time", shifted)
    return shifted


def expected_ids(version: int, *values: str) -> list[list[bytes]]:
    return [answer(v.encode(), FAKE_K, version)[0] for v in values]


def test_serving_modules_import_without_tensorflow() -> None:
    # What makes these tests fast, and keeps the core usable behind a TF-free runtime.
    code = (
        "import sys\n"
        "import scann_serving.server._core, scann_serving.server._manager\n"
        "import scann_serving.server._batching, scann_serving.server._servable\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_predict_answers_from_the_latest_version_and_is_counted(harness: Harness) -> None:
    publish_version(harness.base, 2)
    core = harness.core()

    result = core.predict(call(queries("a", "b")))

    assert (result.model, result.version, result.signature) == (MODEL, 2, "serving_default")
    assert result.outputs["identifiers"].tolist() == expected_ids(2, "a", "b")
    assert result.outputs["scores"].shape == (2, FAKE_K)
    assert metric_value(harness.metrics, "requests_total", version="2", status="OK") == 1


def test_ready_until_drain_begins(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        core = h.core()
        assert not core.ready()  # no version yet
        publish_version(h.base, 1)
        core.manager.poll_once()
        assert core.ready()
        core.begin_drain()
        assert not core.ready()


def test_drain_admits_calls_within_the_window_then_refuses(
    harness: Harness, clock: ShiftedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wide window, so "within it" does not depend on how fast this machine is.
    monkeypatch.setattr(_core, "DRAIN_ADMIT_SECONDS", 30.0)
    core = harness.core()
    core.begin_drain()

    admitted = core.predict(call(queries("sent-before-sigterm")))
    clock.advance(30.0)
    with pytest.raises(Unavailable, match="shutting down"):
        core.predict(call(queries("late")))

    assert admitted.outputs["identifiers"].tolist() == expected_ids(1, "sent-before-sigterm")
    assert harness.loader.servables[(MODEL, 1)].run_rows() == [[b"sent-before-sigterm"]]


def test_calls_in_flight_finish_while_new_calls_are_refused(
    harness: Harness, clock: ShiftedClock
) -> None:
    core = harness.core()
    harness.loader.run_gate.close()
    in_flight = [harness.in_thread(core.predict, call(queries(q))) for q in ("x", "y")]
    harness.loader.run_gate.wait_held(2)

    core.begin_drain()
    clock.advance(DRAIN_ADMIT_SECONDS)
    with pytest.raises(Unavailable):
        core.predict(call(queries("new")))
    assert not core.wait_idle(0.01)  # both calls are still held in the model

    harness.loader.run_gate.open()
    assert core.wait_idle(10.0)
    results = [future.result(timeout=10) for future in in_flight]
    assert [r.outputs["identifiers"].tolist() for r in results] == [
        expected_ids(1, "x"),
        expected_ids(1, "y"),
    ]
    assert metric_value(harness.metrics, "requests_total", status="OK") == 2


def test_wait_idle_is_immediate_without_calls(harness: Harness) -> None:
    core = harness.core()
    core.begin_drain()
    assert core.wait_idle(0.0)


def test_expired_deadline_is_refused_before_the_model_runs(
    harness: Harness, clock: ShiftedClock
) -> None:
    core = harness.core()
    with pytest.raises(DeadlineExceeded, match="before the request was computed"):
        core.predict(call(queries("late"), deadline=clock.monotonic() - 1.0))
    assert harness.loader.servables[(MODEL, 1)].batches == []
    assert metric_value(harness.metrics, "requests_total", status="DEADLINE_EXCEEDED") == 1


def test_deadline_passing_in_the_batch_queue_answers_deadline_exceeded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scann_serving.server import _batching

    batch_clock = ShiftedClock()
    monkeypatch.setattr(_batching, "time", batch_clock)
    core = harness.core(harness.batcher(max_batch_size=8))
    deadline = batch_clock.monotonic() + 30.0  # admitted by the core's (unshifted) clock
    batch_clock.advance(60.0)  # ...and past by the time the batcher's worker looks

    with pytest.raises(DeadlineExceeded, match="while queued"):
        core.predict(call(queries("queued"), deadline=deadline))
    assert harness.loader.servables[(MODEL, 1)].batches == []
    assert metric_value(harness.metrics, "requests_total", status="DEADLINE_EXCEEDED") == 1


@pytest.mark.parametrize("batching", [False, True])
def test_predict_async_gives_the_same_answer(harness: Harness, batching: bool) -> None:
    core = harness.core(harness.batcher(max_batch_size=8) if batching else None)
    result = asyncio.run(core.predict_async(call(queries("a", "b")), harness.pool))
    assert result.outputs["identifiers"].tolist() == expected_ids(1, "a", "b")
    assert metric_value(harness.metrics, "requests_total", status="OK", api="grpc") == 1


def test_cancelled_async_call_is_counted_cancelled(harness: Harness) -> None:
    core = harness.core()
    harness.loader.run_gate.close()

    async def cancel_while_running() -> None:
        task = asyncio.create_task(core.predict_async(call(queries("q")), harness.pool))
        await asyncio.to_thread(harness.loader.run_gate.wait_held, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_running())
    harness.loader.run_gate.open()
    assert core.wait_idle(10.0)
    assert metric_value(harness.metrics, "requests_total", status="CANCELLED") == 1


def test_bad_input_is_invalid_argument_and_never_reaches_the_model(harness: Harness) -> None:
    core = harness.core()
    with pytest.raises(InvalidArgument, match="expects string but float32"):
        core.predict(call({"query": np.zeros(2, np.float32)}))
    retrieve = {**queries("a"), "k": np.array(99, np.int32)}
    with pytest.raises(InvalidArgument, match="k=99 is out of range"):
        core.predict(call(retrieve, signature="retrieve"))
    assert harness.loader.servables[(MODEL, 1)].batches == []
    assert metric_value(harness.metrics, "requests_total", status="INVALID_ARGUMENT") == 2


def test_unknown_model_and_version_are_not_found(harness: Harness) -> None:
    core = harness.core()
    with pytest.raises(NotFound, match="no model named 'other'"):
        core.predict(_core.PredictCall(ModelRef("other"), "", queries("a")))
    with pytest.raises(NotFound, match=r"Specific\(fake, 7\)"):
        core.predict(call(queries("a"), version=7))
    assert metric_value(harness.metrics, "requests_total", status="NOT_FOUND") == 2


def test_metadata_reports_the_resolved_version(harness: Harness) -> None:
    core = harness.core()
    meta = core.metadata(ModelRef(MODEL), ["signature_def", "scann_manifest"])
    assert (meta.model, meta.version) == (MODEL, 1)
    assert set(meta.signature_defs) == {"serving_default", "retrieve"}
    assert meta.manifest is not None and meta.manifest["fake"] is True
    with pytest.raises(InvalidArgument, match="at least one metadata_field"):
        core.metadata(ModelRef(MODEL), [])
    with pytest.raises(InvalidArgument, match="Metadata field nope is not supported"):
        core.metadata(ModelRef(MODEL), ["nope"])


def test_classify_and_regress_answer_as_tf_serving(harness: Harness) -> None:
    core = harness.core()
    with pytest.raises(InvalidArgument, match="Expected classification signature"):
        core.check_method(ModelRef(MODEL), "", METHOD_CLASSIFY, "classification")
    with pytest.raises(Unimplemented, match="use Predict"):
        core.check_method(ModelRef(MODEL), "", METHOD_PREDICT, "prediction")


def test_reload_applies_a_config_and_refuses_a_bad_one(harness: Harness, tmp_path: Path) -> None:
    core = harness.core()
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path = "second", str(tmp_path / "second")
    publish_version(tmp_path / "second", 4)

    core.reload(config)

    assert [r.version for r in core.status(ModelRef("second"))] == [4]
    with pytest.raises(NotFound):
        core.status(ModelRef(MODEL))  # not in the new config: dropped
    config.model_config_list.config.add().CopyFrom(model)
    with pytest.raises(InvalidArgument, match="appears twice"):
        core.reload(config)
    assert [r.version for r in core.status(ModelRef("second"))] == [4]  # nothing changed
    with pytest.raises(NotFound):
        core.status(ModelRef(MODEL))
