"""The served call's lean path keeps the general path's answers and checks.

A served Predict should cost little more than its search, so the per-call steps take
shortcuts: common tensors are converted without the general checks (`_tensors`), model
specs map to cached ModelRefs (`_wire`), small native calls run on the asyncio loop
(`ServingCore.runs_inline`) and loaded versions are frozen out of the garbage collector
(`_manager.settle_heap`). Each shortcut is checked here against what it stands for, in
process and without TensorFlow.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _fake_servable import publish_version, queries
from _inprocess_harness import MODEL, Harness, call
from scann_serving.server import _wire
from scann_serving.server._errors import InvalidArgument
from scann_serving.server._pb import ModelSpec, TensorProto
from scann_serving.server._servable import Signature
from scann_serving.server._tensors import _common_case, array_to_proto, proto_to_array

DT_FLOAT, DT_INT32, DT_STRING, DT_INT64, DT_BOOL = 1, 3, 7, 9, 10


def tensor(dtype: int, shape: list[int], **values: Any) -> TensorProto:
    proto = TensorProto(dtype=dtype, **values)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize(
    ("proto", "expected"),
    [
        (tensor(DT_STRING, [1], string_val=[b"42"]), np.array([b"42"], dtype=object)),
        (tensor(DT_STRING, [3], string_val=[b"a", b"", b"\xc3\xa9"]), None),
        (tensor(DT_INT32, [], int_val=[7]), np.array(7, np.int32)),
        (tensor(DT_INT64, [], int64_val=[-3]), np.array(-3, np.int64)),
        (tensor(DT_FLOAT, [], float_val=[0.5]), np.array(0.5, np.float32)),
        (tensor(DT_BOOL, [], bool_val=[True]), np.array(True, np.bool_)),
    ],
)
def test_common_tensors_convert_to_what_the_general_path_gives(
    proto: TensorProto, expected: np.ndarray | None
) -> None:
    fast = _common_case(proto)
    assert fast is not None
    if expected is None:  # built by hand: the values, in order, as an object array
        expected = np.empty(len(proto.string_val), dtype=object)
        expected[:] = list(proto.string_val)
    assert fast.dtype == expected.dtype and fast.shape == expected.shape
    assert fast.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (tensor(DT_STRING, [3], string_val=[b"a"]), None),  # one value fills the shape
        (tensor(DT_STRING, [2], string_val=[b"a", b"b", b"c"]), "has 3 values but its shape"),
        (tensor(DT_STRING, [0]), None),  # an empty batch (validation refuses it later)
        (tensor(DT_STRING, [1, 1], string_val=[b"a"]), None),
        (tensor(DT_INT32, [], int_val=[1, 2]), "has 2 values but its shape"),
        (tensor(DT_INT32, [], tensor_content=b"\x05\x00\x00\x00"), None),
        (tensor(DT_INT32, [1], int_val=[5]), None),
        (tensor(DT_STRING, [-1], string_val=[b"a"]), "negative dimension"),
        (
            TensorProto(dtype=DT_STRING, string_val=[b"a"], tensor_shape={"unknown_rank": True}),
            "unknown rank",
        ),
    ],
)
def test_other_tensors_take_the_general_path_with_its_checks(
    proto: TensorProto, message: str | None
) -> None:
    assert _common_case(proto) is None
    if message is None:
        assert proto_to_array(proto, "query").size >= 0
    else:
        with pytest.raises(InvalidArgument, match=message):
            proto_to_array(proto, "query")


@pytest.mark.parametrize(
    "array",
    [
        np.array([[b"x", b"yz"]], dtype=object),
        np.arange(12, dtype=np.float32).reshape(3, 4).T,  # not C-contiguous
        np.array([[1, -2]], dtype=np.int64),
        np.array(3, dtype=np.int32),
        np.zeros((2, 0), dtype=np.float32),
    ],
)
def test_arrays_round_trip_through_tensor_protos(array: np.ndarray) -> None:
    back = proto_to_array(array_to_proto(array), "x")
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tolist() == array.tolist()


def test_str_identifiers_are_encoded_and_nothing_is_appended_twice() -> None:
    proto = array_to_proto(np.array([["é", b"b", 3]], dtype=object))
    assert list(proto.string_val) == ["é".encode(), b"b", b"3"]
    assert [d.size for d in proto.tensor_shape.dim] == [1, 3]


def test_model_specs_map_to_the_same_refs_and_an_empty_name_is_always_refused() -> None:
    latest, pinned, labelled = ModelSpec(name="m"), ModelSpec(name="m"), ModelSpec(name="m")
    pinned.version.value = 3
    labelled.version_label = "stable"
    refs = [_wire.model_ref(spec) for spec in (latest, pinned, labelled)]
    assert [(r.name, r.version, r.label) for r in refs] == [
        ("m", None, None),
        ("m", 3, None),
        ("m", None, "stable"),
    ]
    assert _wire.model_ref(ModelSpec(name="m")) is refs[0]
    for _ in range(2):
        with pytest.raises(InvalidArgument, match=r"model_spec\.name is empty"):
            _wire.model_ref(ModelSpec())


def test_the_ref_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_wire, "_REFS", {})
    for number in range(_wire._MAX_CACHED_REFS + 50):
        assert _wire.model_ref(ModelSpec(name=f"model-{number}")).name == f"model-{number}"
    assert len(_wire._REFS) == _wire._MAX_CACHED_REFS


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path) as h:
        publish_version(h.base, 1)
        yield h


def run_threads(harness: Harness, quick: bool | None, batching: bool) -> tuple[int, int]:
    """(loop thread id, the thread the model ran on) for one asyncio predict call."""
    core = harness.core(harness.batcher(max_batch_size=8) if batching else None)
    servable = core.manager.resolve(MODEL, None, None)
    ran_on: list[int] = []
    if quick is not None:
        seen: list[tuple[str, int]] = []

        def runs_quickly(signature: Signature, rows: int) -> bool:
            seen.append((signature.name, rows))
            return quick

        servable.runs_quickly = runs_quickly  # type: ignore[attr-defined]
    original = servable.run

    def run(*args: Any, **kwargs: Any) -> Any:
        ran_on.append(threading.get_ident())
        return original(*args, **kwargs)

    servable.run = run  # type: ignore[method-assign]

    async def predict() -> int:
        result = await core.predict_async(call(queries("a", "b")), harness.pool)
        assert result.outputs["identifiers"].shape[0] == 2
        return threading.get_ident()

    loop_thread = asyncio.run(predict())
    if quick is not None and not batching:
        assert seen == [("serving_default", 2)]
    return loop_thread, ran_on[0]


def test_a_quick_call_runs_on_the_event_loop_without_batching(harness: Harness) -> None:
    loop_thread, model_thread = run_threads(harness, quick=True, batching=False)
    assert model_thread == loop_thread


@pytest.mark.parametrize(("quick", "batching"), [(False, False), (None, False), (True, True)])
def test_other_calls_leave_the_event_loop(
    harness: Harness, quick: bool | None, batching: bool
) -> None:
    loop_thread, model_thread = run_threads(harness, quick=quick, batching=batching)
    assert model_thread != loop_thread


def test_a_loaded_version_is_frozen_out_of_the_collector(harness: Harness) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        harness.core()  # the manager loads version 1
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
