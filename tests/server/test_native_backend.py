"""--backend=native|auto|tensorflow: which servable runs a version, what a partial bundle
answers, and that the native backend never loads TensorFlow (a real process proves it).

The shared servers of `conftest.server` already run the whole predict/metadata/status
suite on both backends; these tests cover what only the backend choice changes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from scann_serving.server._backend import choose
from scann_serving.server._bundle import BUNDLE_RELPATH
from scann_serving.server._config import ModelsConfig, single_model_config
from scann_serving.server._core import ModelRef, PredictCall, ServingCore
from scann_serving.server._errors import FailedPrecondition
from scann_serving.server._manager import ModelManager
from scann_serving.server._metrics import Metrics
from serve_helpers import ServerProcess, predict_request

MODEL = "retrieval"


@pytest.fixture(scope="module")
def embeddings_only_base(tmp_path_factory: pytest.TempPathFactory, tiny_spec: Any) -> Path:
    """A version whose native bundle has no query tower (the tower is not a lookup table)."""
    from scann_serving.export.testing import make_tiny_version

    base = tmp_path_factory.mktemp("embeddings-only") / MODEL
    make_tiny_version(base, model_name=MODEL, spec=tiny_spec, native_tower=False)
    return base


@pytest.fixture(scope="module")
def no_bundle_base(tmp_path_factory: pytest.TempPathFactory, tiny_spec: Any) -> Path:
    """A version exported without a native bundle (--no-native-bundle)."""
    from scann_serving.export.testing import make_tiny_version

    base = tmp_path_factory.mktemp("no-bundle") / MODEL
    make_tiny_version(base, model_name=MODEL, spec=tiny_spec, native_bundle=False)
    return base


def _core(base: Path, backend: str) -> tuple[ServingCore, Metrics]:
    config = ModelsConfig(
        model_config=single_model_config(MODEL, str(base)),
        backend=backend,
        file_system_poll_wait_seconds=0,
    )
    metrics = Metrics()
    manager = ModelManager(config, metrics)
    manager.poll_once()
    return ServingCore(manager, metrics, None), metrics


def _call(core: ServingCore, signature: str, inputs: dict[str, np.ndarray]) -> Any:
    return core.predict(PredictCall(ModelRef(MODEL), signature, inputs, (), None))


def _queries(*keys: str) -> dict[str, np.ndarray]:
    return {"query": np.asarray([k.encode() for k in keys], dtype=object)}


def test_auto_chooses_per_version(
    tiny_model_base: Path, embeddings_only_base: Path, no_bundle_base: Path
) -> None:
    full, partial, none = (
        base / "1" for base in (tiny_model_base, embeddings_only_base, no_bundle_base)
    )
    assert choose("auto", full)[0] == "native"
    backend, reason = choose("auto", partial)
    assert backend == "tensorflow" and "serving_default" in reason and "lookup table" in reason
    backend, reason = choose("auto", none)
    assert backend == "tensorflow" and "no native bundle" in reason
    assert choose("tensorflow", full)[0] == "tensorflow"
    assert choose("native", partial)[0] == "native"


def test_native_answers_like_tensorflow_in_process(tiny_model_base: Path, tiny_spec: Any) -> None:
    native, metrics = _core(tiny_model_base, "native")
    tensorflow, _ = _core(tiny_model_base, "tensorflow")
    inputs = _queries("1", "7", "no such user")
    for signature, extra in (
        ("serving_default", {}),
        ("retrieve", {"k": np.asarray(50, np.int32)}),
    ):
        got = _call(native, signature, {**inputs, **extra}).outputs
        want = _call(tensorflow, signature, {**inputs, **extra}).outputs
        assert got["identifiers"].tolist() == want["identifiers"].tolist()
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-4, atol=1e-4)
    truth, _ = tiny_spec.brute_force(["1", "7"], 10)
    got = _call(native, "", _queries("1", "7")).outputs["identifiers"]
    assert [[i.decode() for i in row] for row in got] == truth.tolist()
    assert 'backend="native"' in metrics.render()


def test_native_without_a_tower_serves_embeddings_and_refuses_keys(
    embeddings_only_base: Path, tiny_spec: Any
) -> None:
    core, _ = _core(embeddings_only_base, "native")
    [status] = core.status(ModelRef(MODEL))
    assert status.state == "AVAILABLE" and "search_embedding" in status.error_message
    result = _call(core, "search_embedding", {"embedding": tiny_spec.user_embeddings[:2]})
    truth, _ = tiny_spec.brute_force(["1", "2"], 10)
    assert [[i.decode() for i in row] for row in result.outputs["identifiers"]] == truth.tolist()
    for signature in ("serving_default", "retrieve", "retrieve_with_exclusions"):
        with pytest.raises(FailedPrecondition) as refused:
            _call(core, signature, _queries("1"))
        assert "--backend=tensorflow" in refused.value.message
        assert "native backend" in refused.value.message and signature in refused.value.message


def test_native_refuses_a_version_without_bundle(no_bundle_base: Path) -> None:
    core, _ = _core(no_bundle_base, "native")
    [status] = core.status(ModelRef(MODEL))
    assert status.state == "END" and status.error_code != "OK"
    assert "--backend=native" in status.error_message
    assert "--backend=tensorflow" in status.error_message


def test_native_server_never_loads_tensorflow(tiny_model_base: Path, tmp_path: Path) -> None:
    base = tmp_path / MODEL
    shutil.copytree(tiny_model_base, base)
    with ServerProcess("--backend=native", model_name=MODEL, model_base_path=base) as server:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        with server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(predict_request(MODEL, ["1"]), timeout=10)
            assert len(response.outputs["identifiers"].string_val) == 10
            with pytest.raises(grpc.RpcError) as bad:
                stub.Predict(predict_request(MODEL, ["1"], k=10_000), timeout=10)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert server.process is not None
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
        loaded = {line.split()[-1] for line in maps.splitlines() if "/" in line}
    assert any("scann" in path for path in loaded), "the native server did not load ScaNN"
    assert not [path for path in loaded if "tensorflow" in path.lower()]


def test_native_modules_import_without_tensorflow(tiny_model_base: Path) -> None:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import scann_serving.server._app, scann_serving.server._cli\n"
        "import scann_serving.server._grpc_aio, scann_serving.server._rest\n"
        "from scann_serving.server._native_model import NativeServable\n"
        f"s = NativeServable('m', 1, Path({str(tiny_model_base / '1')!r}), 100)\n"
        "s.warmup()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tf_keras', 'keras', 'tensorflow_serving'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert (tiny_model_base / "1" / BUNDLE_RELPATH / "bundle.json").is_file()
