"""Versions: polling, availability-preserving swap, broken versions, preflight, policies,
labels and HandleReloadConfigRequest, each against a real scann-serve subprocess."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from scann_serving.server._bundle import BUNDLE_RELPATH
from serve_helpers import ServerProcess
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

MODEL = "retrieval"


def publish_copy(
    base: Path, source: Path, version: int, mutate: Callable[[Path], None] | None = None
) -> None:
    """Publishes a copy of `source` as `version` the way the exporter does: staging + rename."""
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    if mutate is not None:
        mutate(staging)
    staging.rename(base / str(version))


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def predict_version(stub: Any, model: str = MODEL, label: str = "", version: int = 0) -> int:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if label:
        request.model_spec.version_label = label
    if version:
        request.model_spec.version.value = version
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(np.asarray([b"1"], dtype=object)))
    return int(stub.Predict(request, timeout=10).model_spec.version.value)


def statuses(stub: Any, model: str = MODEL) -> dict[int, Any]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    return {s.version: s for s in stub.GetModelStatus(request, timeout=10).model_version_status}


@pytest.fixture(scope="module")
def rollover(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_base: Path
) -> Iterator[tuple[ServerProcess, Path]]:
    base = tmp_path_factory.mktemp("rollover") / MODEL
    base.mkdir()
    publish_copy(base, tiny_model_base / "1", 1)
    with ServerProcess(
        "--file_system_poll_wait_seconds=1", model_name=MODEL, model_base_path=base
    ) as server:
        yield server, base


def test_new_version_replaces_old_then_broken_versions_never_do(
    rollover: tuple[ServerProcess, Path],
) -> None:
    server, base = rollover
    with server.channel() as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        assert predict_version(predict) == 1
        publish_copy(base, base / "1", 2)
        wait_for(lambda: predict_version(predict) == 2, what="version 2 to serve")
        wait_for(
            lambda: statuses(models)[1].state == get_model_status_pb2.ModelVersionStatus.END,
            what="version 1 unloaded",
        )

        def truncate(version_dir: Path) -> None:
            data = next((version_dir / "variables").glob("variables.data-*"))
            data.write_bytes(data.read_bytes()[:100])
            # The same damage to the native bundle, which `--backend=auto` would serve.
            data = version_dir / BUNDLE_RELPATH / "candidates.offsets.npy"
            data.write_bytes(data.read_bytes()[:100])

        publish_copy(base, base / "2", 3, truncate)
        broken = wait_for(
            lambda: (
                statuses(models).get(3)
                if statuses(models).get(3, None) is not None
                and statuses(models)[3].status.error_message
                else None
            ),
            what="version 3 error",
        )
        assert broken.state == get_model_status_pb2.ModelVersionStatus.END
        assert predict_version(predict) == 2
        assert server.health() == "SERVING"

        def other_runtime(version_dir: Path) -> None:
            path = version_dir / "assets.extra" / "scann_manifest.json"
            manifest = json.loads(path.read_text())
            manifest["runtime"]["tensorflow"] = "2.0.0"
            path.write_text(json.dumps(manifest))

        publish_copy(base, base / "2", 4, other_runtime)
        refused = wait_for(
            lambda: (
                statuses(models).get(4)
                if statuses(models).get(4, None) is not None
                and statuses(models)[4].status.error_message
                else None
            ),
            what="version 4 refused",
        )
        assert refused.status.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "tensorflow 2.0.0" in refused.status.error_message
        assert predict_version(predict) == 2
        assert statuses(models)[2].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        moved = base.with_name("moved-away")
        base.rename(moved)  # storage glitch: an unlistable base path must not unload anything
        time.sleep(2.5)
        assert predict_version(predict) == 2
        moved.rename(base)
    metrics = requests.get(f"{server.rest_url}/monitoring/prometheus/metrics", timeout=10).text
    assert (
        'scann_serving_model_loads_total{model="retrieval",version="3",result="failure"}' in metrics
    )
    assert (
        'scann_serving_model_loads_total{model="retrieval",version="2",result="success"} 1'
        in metrics
    )


CONFIG = """
model_config_list {{
  config {{
    name: "all_versions"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
  }}
  config {{
    name: "pinned"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
}}
"""


def test_policies_labels_and_reload(tmp_path: Path, tiny_model_base: Path) -> None:
    base = tmp_path / "models"
    base.mkdir()
    for version in (1, 2, 3):
        publish_copy(base, tiny_model_base / "1", version)
    config = tmp_path / "models.config"
    config.write_text(CONFIG.format(base=base))
    with ServerProcess(f"--model_config_file={config}") as server, server.channel() as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        wait_for(
            lambda: (
                len([s for s in statuses(models, "all_versions").values() if s.state == 30]) == 3
            ),
            what="all three versions",
        )
        wait_for(
            lambda: [s.state for s in statuses(models, "pinned").values()] == [30, 30],
            what="pinned versions",
        )
        assert sorted(statuses(models, "pinned")) == [1, 2]
        assert predict_version(predict, "pinned") == 2
        assert predict_version(predict, "pinned", label="stable") == 1
        assert predict_version(predict, "pinned", label="canary") == 2
        assert predict_version(predict, "all_versions", version=1) == 1
        reply = requests.post(
            f"{server.rest_url}/v1/models/pinned/labels/stable:predict",
            json={"instances": ["1"]},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text

        request = model_management_pb2.ReloadConfigRequest()
        model = request.config.model_config_list.config.add()
        model.name, model.base_path, model.model_platform = "renamed", str(base), "tensorflow"
        reply_status = models.HandleReloadConfigRequest(request, timeout=60)
        assert reply_status.status.error_code == 0
        assert predict_version(predict, "renamed") == 3
        with pytest.raises(grpc.RpcError) as info:
            predict_version(predict, "pinned")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
