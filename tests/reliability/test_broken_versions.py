"""Promise 2 — broken versions never replace a good one.

A version is published (atomically) on top of a good one with one defect each: a
truncated variables file, a missing file of the SavedModel (its variables index), a
warmup record the model rejects, a manifest from another TensorFlow / ScaNN. Under load,
promised: 0 failed calls, the previous version keeps answering, GetModelStatus shows the
failure with a message, health stays SERVING, and the load-failure metric counts it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from _rel_support import (
    MANIFEST,
    WARMUP,
    Call,
    HealthWatch,
    Load,
    SharedServer,
    VersionState,
    failures,
    latest_version,
    metric,
    metrics_text,
    model_status,
    publish_copy,
    wait_until,
)
from scann_serving.server._bundle import BUNDLE_RELPATH

MODEL = "broken"
FAILURE_METRIC = "scann_serving_model_loads_total"


def _truncate_variables(version_dir: Path) -> None:
    data = version_dir / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    # The same damage to the native bundle, which `--backend=auto` would serve otherwise.
    data = version_dir / BUNDLE_RELPATH / "candidates.offsets.npy"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def _remove_variables_index(version_dir: Path) -> None:
    (version_dir / "variables" / "variables.index").unlink()
    (version_dir / BUNDLE_RELPATH / "bundle.json").unlink()  # auto then falls back to TF


def _bad_warmup(version_dir: Path) -> None:
    """A warmup record whose `query` is float32: the model rejects it at warmup."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "serving_default"
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(np.asarray([1.5], np.float32)))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    with tf.io.TFRecordWriter(str(version_dir / WARMUP)) as writer:
        writer.write(log.SerializeToString())


def _foreign_manifest(version_dir: Path) -> None:
    path = version_dir / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["runtime"].update(tensorflow="2.15.1", scann="1.3.0")
    path.write_text(json.dumps(manifest))


DEFECTS: dict[str, Callable[[Path], None]] = {
    "truncated variables file": _truncate_variables,
    "missing variables index": _remove_variables_index,
    "failing warmup": _bad_warmup,
    "manifest from another TF/ScaNN": _foreign_manifest,
}
#: What GetModelStatus's message must mention for each defect.
MESSAGE_HINTS = {
    "truncated variables file": "re-export",
    "missing variables index": "re-export",
    "failing warmup": "warmup",
    "manifest from another TF/ScaNN": "tensorflow 2.15.1",
}


def _good_version(shared: SharedServer) -> int:
    status = model_status(shared.channel, MODEL)
    return max(v for v, s in status.items() if s.state == "AVAILABLE")


@dataclass(frozen=True)
class BrokenRun:
    """What happened while one broken version was published under load."""

    good: int
    version: int
    state: VersionState
    calls: list[Call]
    health: set[str]
    failures_counted: float


def _publish_broken(shared: SharedServer, defect: str, clients: int) -> BrokenRun:
    base = shared.bases[MODEL]
    good = _good_version(shared)
    version = latest_version(base) + 1
    before = metric(metrics_text(shared.rest_url), FAILURE_METRIC, model=MODEL, result="failure")
    queries = [str(u) for u in range(1, 51)]
    with (
        HealthWatch(shared.channel) as health,
        Load(shared.target, MODEL, clients, queries) as load,
    ):
        load.wait_for_calls(ok=clients, timeout=60)
        publish_copy(base / str(good), base, version, damage=DEFECTS[defect])

        def failed() -> object:
            state = model_status(shared.channel, MODEL).get(version)
            return state if state is not None and state.state == "END" else None

        state = wait_until(failed, 60, 0.1, f"{MODEL} version {version} to fail to load")
        time.sleep(1.5)  # one more poll: the failed version must still not be picked up
        calls = load.stop()
    after = metric(metrics_text(shared.rest_url), FAILURE_METRIC, model=MODEL, result="failure")
    return BrokenRun(good, version, state, calls, health.statuses, after - before)


def _check(shared: SharedServer, defect: str, run: BrokenRun) -> None:
    calls, state, good = run.calls, run.state, run.good
    assert calls, "the load clients made no calls"
    failed = failures(calls)
    assert not failed, f"{defect}: {len(failed)} of {len(calls)} calls failed: {failed[:3]}"
    versions = {c.version for c in calls}
    assert versions == {good}, f"{defect}: answers came from {versions}, not only v{good}"
    assert state.error_code != 0, f"{defect}: GetModelStatus shows no error: {state}"
    assert state.error_message, f"{defect}: GetModelStatus has no error message"
    hint = MESSAGE_HINTS.get(defect)
    assert hint is None or hint in state.error_message, state.error_message
    assert run.health == {"SERVING"}, f"{defect}: health was {run.health}"
    assert run.failures_counted >= 1, f"{defect}: {FAILURE_METRIC}{{result=failure}} unchanged"
    status = model_status(shared.channel, MODEL)
    assert status[good].state == "AVAILABLE", f"{defect}: v{good} is {status[good].state}"


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_broken_version_never_replaces_good(shared_server: SharedServer, defect: str) -> None:
    """Fast variant: one broken version per defect, 2 clients calling throughout."""
    run = _publish_broken(shared_server, defect, clients=2)
    _check(shared_server, defect, run)
    print(f"{defect}: {len(run.calls)} calls, 0 failed; status: {run.state}")


def test_good_version_after_broken_ones_is_served(shared_server: SharedServer) -> None:
    """After the broken versions, the next good version still loads and takes over."""
    base = shared_server.bases[MODEL]
    version = latest_version(base) + 1
    publish_copy(base / "1", base, version)
    wait_until(
        lambda: (
            model_status(shared_server.channel, MODEL).get(version, None) is not None
            and model_status(shared_server.channel, MODEL)[version].state == "AVAILABLE"
        ),
        60,
        0.1,
        f"good version {version} to become AVAILABLE",
    )
    with Load(shared_server.target, MODEL, 2, ["1", "2", "3"]) as load:
        load.wait_for_calls(ok=4, timeout=60)
    calls = load.stop()
    assert calls and not failures(calls)
    assert {c.version for c in calls} == {version}


@pytest.mark.slow
def test_broken_versions_soak(shared_server: SharedServer) -> None:
    """Soak variant: 8 clients; every defect published twice in a row, alternating."""
    for _ in range(2):
        for defect in DEFECTS:
            run = _publish_broken(shared_server, defect, clients=8)
            _check(shared_server, defect, run)
            print(f"{defect}: {len(run.calls)} calls, 0 failed")
