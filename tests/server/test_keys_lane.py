"""The keys lane: a native version answers the common Predict (a few raw keys, maybe k)
without the general conversion and checks, and must answer exactly as the full path does.

`_wire.keys_call` picks the request out of the proto, `ServingCore.predict_keys` admits,
resolves and records it, `NativeServable.predict_keys` looks the keys up and searches.
Every request here is sent both ways on a real tiny native version, in process: what the
lane answers equals the full path's response, and what it declines (None) is exactly
what the full path refuses or answers its own way (errors with their messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _inprocess_harness import ShiftedClock, metric_value
from scann_serving.server import _core
from scann_serving.server._batching import Batcher
from scann_serving.server._config import BatchingConfig, ModelsConfig, single_model_config
from scann_serving.server._core import ServingCore
from scann_serving.server._errors import DeadlineExceeded, Internal, ServingError, Unavailable
from scann_serving.server._grpc import PredictionServicer
from scann_serving.server._manager import ModelManager
from scann_serving.server._metrics import Metrics
from scann_serving.server._native_search import TOWER_INTEGER, TOWER_STRING, QueryTable
from scann_serving.server._pb import PredictRequest, TensorProto
from scann_serving.server._wire import keys_call, predict_call, predict_response

MODEL = "retrieval"
MAX_K = 50  # make_tiny_version's default max_k
DT_FLOAT, DT_INT32, DT_STRING, DT_INT64 = 1, 3, 7, 9


class Context:
    """The parts of a grpc ServicerContext the adapters read; abort raises the status."""

    def __init__(self, remaining: float | None = None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining

    def abort(self, code: Any, message: str) -> None:
        raise AbortedError(code, message)


class AbortedError(Exception):
    def __init__(self, code: Any, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def tensor(dtype: int, shape: list[int], **values: Any) -> TensorProto:
    proto = TensorProto(dtype=dtype, **values)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def keys(*values: str | bytes) -> TensorProto:
    raw = [v if isinstance(v, bytes) else v.encode() for v in values]
    return tensor(DT_STRING, [len(raw)], string_val=raw)


def k_tensor(value: int) -> TensorProto:
    return tensor(DT_INT32, [], int_val=[value])


def request(signature: str = "", version: int | None = None, **inputs: TensorProto) -> Any:
    message = PredictRequest()
    message.model_spec.name = MODEL
    message.model_spec.signature_name = signature
    if version is not None:
        message.model_spec.version.value = version
    for name, proto in inputs.items():
        message.inputs[name].CopyFrom(proto)
    return message


def make_core(base: Path, batcher: Batcher | None = None) -> ServingCore:
    config = ModelsConfig(
        model_config=single_model_config(MODEL, str(base)),
        backend="native",
        file_system_poll_wait_seconds=0,
    )
    metrics = Metrics()
    manager = ModelManager(config, metrics)
    manager.poll_once()
    return ServingCore(manager, metrics, batcher)


@pytest.fixture(scope="module")
def core(tiny_model_base: Path) -> ServingCore:
    made = make_core(tiny_model_base)
    assert made.resolve(_core.ModelRef(MODEL)).backend == "native"
    return made


def full_path(core: ServingCore, message: Any) -> Any:
    """The full path's response, or the ServingError it raises."""
    try:
        return predict_response(core.predict(predict_call(message, Context())))
    except ServingError as exc:
        return exc


def lane(core: ServingCore, message: Any) -> Any:
    """The lane's response, or None where it declines."""
    call = keys_call(message, Context())
    result = None if call is None else core.predict_keys(call)
    return None if result is None else predict_response(result)


ANSWERED = {
    "a known key": request(query=keys("1")),
    "an unknown key": request(query=keys("nobody")),
    "a non-ASCII key": request(query=keys("Amélie ☕ 東京")),
    "an empty key": request(query=keys("")),
    "seven keys, repeated and unknown": request(query=keys("1", "2", "1", "x", "50", "é", "3")),
    "serving_default named": request("serving_default", query=keys("7")),
    "retrieve k=1": request("retrieve", query=keys("4"), k=k_tensor(1)),
    "retrieve k=max_k": request("retrieve", query=keys("4", "5"), k=k_tensor(MAX_K)),
    "a pinned version": request(version=1, query=keys("9")),
}


@pytest.mark.parametrize("name", list(ANSWERED))
def test_the_lane_answers_what_the_full_path_answers(core: ServingCore, name: str) -> None:
    message = ANSWERED[name]
    fast, full = lane(core, message), full_path(core, message)
    assert fast is not None, "the lane declined a request it covers"
    assert not isinstance(full, ServingError), full
    assert fast == full  # model spec, identifiers and scores (exactly: the same search)
    rows = len(message.inputs["query"].string_val)
    assert fast.outputs["identifiers"].tensor_shape.dim[0].size == rows


DECLINED = {
    "eight keys (a multi-threaded search)": request(query=keys(*"12345678")),
    "an empty batch": request(query=tensor(DT_STRING, [0])),
    "invalid UTF-8": request(query=keys(b"\xff\xfe")),
    "k = 0": request("retrieve", query=keys("1"), k=k_tensor(0)),
    "k > max_k": request("retrieve", query=keys("1"), k=k_tensor(MAX_K + 1)),
    "k as int64": request("retrieve", query=keys("1"), k=tensor(DT_INT64, [], int64_val=[3])),
    "k of shape [1]": request("retrieve", query=keys("1"), k=tensor(DT_INT32, [1], int_val=[3])),
    "retrieve without k": request("retrieve", query=keys("1")),
    "serving_default with k": request(query=keys("1"), k=k_tensor(3)),
    "int64 ids to a string tower": request(query=tensor(DT_INT64, [1], int64_val=[1])),
    "one value filling two rows": request(query=tensor(DT_STRING, [2], string_val=[b"1"])),
    "a [1, 1] query": request(query=tensor(DT_STRING, [1, 1], string_val=[b"1"])),
    "exclusions": request(
        "retrieve_with_exclusions",
        query=keys("1"),
        exclude=tensor(DT_STRING, [1, 1], string_val=[b"item_3"]),
    ),
    "an embedding": request(
        "search_embedding", embedding=tensor(DT_FLOAT, [1, 8], float_val=[0.5] * 8)
    ),
    "an unknown signature": request("nope", query=keys("1")),
    "an unknown input": request(query=keys("1"), other=keys("2")),
    "an unknown version": request(version=99, query=keys("1")),
}


@pytest.mark.parametrize("name", list(DECLINED))
def test_what_the_lane_declines_the_full_path_answers_or_refuses(
    core: ServingCore, name: str
) -> None:
    message = DECLINED[name]
    try:
        fast = lane(core, message)
    except ServingError as exc:  # only the version lookup may refuse in the lane
        assert name == "an unknown version"
        assert str(exc) == str(full_path(core, message))
        return
    assert fast is None
    full = full_path(core, message)
    refused = {"eight keys", "exclusions", "an embedding", "one value"}
    if any(name.startswith(prefix) for prefix in refused):
        assert not isinstance(full, ServingError), full  # answered, by the full path
    else:
        assert isinstance(full, ServingError) and full.message  # its own error and message


def test_an_output_filter_goes_down_the_full_path(core: ServingCore) -> None:
    message = request(query=keys("1"))
    message.output_filter.append("scores")
    assert keys_call(message, Context()) is None
    assert set(full_path(core, message).outputs) == {"scores"}


def test_the_servicer_answers_both_ways_and_aborts_with_the_full_paths_error(
    core: ServingCore,
) -> None:
    servicer = PredictionServicer(core)
    message = ANSWERED["a non-ASCII key"]
    assert servicer.Predict(message, Context()) == full_path(core, message)
    with pytest.raises(AbortedError) as aborted:
        servicer.Predict(DECLINED["k > max_k"], Context())
    assert aborted.value.code.name == "INVALID_ARGUMENT" and "max_k=50" in aborted.value.message


def test_a_lane_call_is_counted_once_with_the_full_paths_labels(tiny_model_base: Path) -> None:
    fresh = make_core(tiny_model_base)
    labels = {"model": MODEL, "version": "1", "signature": "serving_default", "status": "OK"}
    assert lane(fresh, request(query=keys("1"))) is not None
    assert metric_value(fresh.metrics, "requests_total", **labels) == 1
    assert lane(fresh, DECLINED["k > max_k"]) is None  # declined: nothing counted
    assert metric_value(fresh.metrics, "requests_total", model=MODEL) == 1
    full_path(fresh, request(query=keys("1")))
    assert metric_value(fresh.metrics, "requests_total", **labels) == 2


def test_a_batching_server_sends_every_call_to_the_batcher(tiny_model_base: Path) -> None:
    batcher = Batcher(BatchingConfig(max_batch_size=8, batch_timeout_micros=0), Metrics())
    try:
        batching = make_core(tiny_model_base, batcher)
        call = keys_call(request(query=keys("1")), Context())
        assert call is not None and batching.predict_keys(call) is None
    finally:
        batcher.stop()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedClock:
    shifted = ShiftedClock()
    monkeypatch.setattr(_core, "time", shifted)
    return shifted


def test_the_lane_keeps_deadlines_and_drain(
    tiny_model_base: Path, clock: ShiftedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = make_core(tiny_model_base)
    expired = keys_call(request(query=keys("1")), Context(remaining=5.0))
    assert expired is not None and expired.deadline is not None
    clock.advance(10.0)
    with pytest.raises(DeadlineExceeded, match="deadline expired"):
        fresh.predict_keys(expired)
    monkeypatch.setattr(_core, "DRAIN_ADMIT_SECONDS", 30.0)
    fresh.begin_drain()
    admitted = keys_call(request(query=keys("1")), Context())
    assert admitted is not None and fresh.predict_keys(admitted) is not None
    clock.advance(30.0)
    with pytest.raises(Unavailable, match="shutting down"):
        fresh.predict_keys(admitted)
    with pytest.raises(Unavailable, match="shutting down"):  # as the full path refuses it
        fresh.predict(predict_call(request(query=keys("1")), Context()))
    assert fresh.wait_idle(0.0)  # nothing left in flight by any of them
    # Counted as the full path counts: refused admissions are not requests of a version.
    statuses = ("DEADLINE_EXCEEDED", "OK", "UNAVAILABLE")
    assert [metric_value(fresh.metrics, "requests_total", status=s) for s in statuses] == [1, 1, 0]


def test_a_failing_search_is_internal_not_the_callers_fault(
    tiny_model_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = make_core(tiny_model_base)
    index = fresh.resolve(_core.ModelRef(MODEL))._index  # type: ignore[attr-defined]

    def broken(*args: Any) -> Any:
        raise RuntimeError("searcher exploded")

    monkeypatch.setattr(index, "retrieve_rows", broken)
    call = keys_call(request(query=keys("1")), Context())
    assert call is not None
    with pytest.raises(Internal, match="native search failed: RuntimeError: searcher exploded"):
        fresh.predict_keys(call)
    assert metric_value(fresh.metrics, "requests_total", status="INTERNAL") == 1


@pytest.fixture
def integer_table() -> Iterator[QueryTable]:
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    yield QueryTable(TOWER_INTEGER, rows, min_id=10)


def test_integer_ids_pick_the_rows_embed_picks_and_outside_ids_are_declined(
    integer_table: QueryTable,
) -> None:
    ids = [10, 15, 12, 12]
    rows = integer_table.rows_of(ids)
    assert rows == [0, 5, 2, 2]
    expected = integer_table.embed(np.asarray(ids, np.int64))
    np.testing.assert_array_equal(integer_table.rows[rows], expected)
    assert integer_table.rows_of([9]) is None and integer_table.rows_of([16]) is None
    with pytest.raises(ValueError, match=r"query ids must lie in 10\.\.15"):
        integer_table.embed(np.asarray([16], np.int64))


def test_string_keys_are_checked_as_the_full_path_checks_them_known_or_not() -> None:
    rows = np.zeros((3, 2), np.float32)
    table = QueryTable(TOWER_STRING, rows, keys={b"a": 0, "é".encode(): 1, b"\xff": 2})
    assert table.rows_of([b"a", "é".encode(), b"unknown"]) == [0, 1, 0]
    # A table key that is not UTF-8 is still refused by validation: the lane declines it.
    assert table.rows_of([b"\xff"]) is None and table.rows_of([b"a", b"\xc3"]) is None
