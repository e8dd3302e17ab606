"""serving/ installs into an empty virtualenv without TensorFlow and serves a version natively.

`pip install scann-serving-server` must pull no TensorFlow and no tensorflow-serving-api
(ScaNN without its TF extra, grpcio, protobuf, numpy and the client); the TensorFlow
backend is the `[tensorflow]` extra. The venv is built offline-friendly from uv's cache,
as the client's install test does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scann_serving.client import RetrievalClient
from serve_helpers import ServerProcess

REPO = Path(__file__).resolve().parents[2]
LIST_DISTS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted(d.metadata['Name'].lower().replace('_', '-') "
    "for d in m.distributions())))"
)
MODEL = "retrieval"


@pytest.fixture(scope="module")
def server_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only client/ and serving/ installed; returns its bin directory."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build the throwaway virtualenv (pip install uv)")
    venv = tmp_path_factory.mktemp("server-venv") / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True, timeout=120)
    install = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    subprocess.run([*install, str(REPO / "client"), str(REPO / "serving")], check=True, timeout=900)
    return venv / "bin"


def test_installs_without_tensorflow(server_venv: Path) -> None:
    done = subprocess.run(
        [str(server_venv / "python"), "-c", LIST_DISTS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dists = set(json.loads(done.stdout))
    assert {"scann-serving-server", "scann-serving-client", "scann", "grpcio", "numpy"} <= dists
    heavy = ("tensorflow", "tf-keras", "keras", "tf-nightly", "jax")
    assert not {d for d in dists if d.startswith(heavy)}, sorted(dists)
    done = subprocess.run(
        [str(server_venv / "scann-serve"), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "(tensorflow none, scann 1.4.2)" in done.stdout


def test_serves_a_version_natively(
    server_venv: Path, tiny_model_base: Path, tiny_spec: Any, tmp_path: Path
) -> None:
    base = tmp_path / MODEL
    shutil.copytree(tiny_model_base, base)
    command = [str(server_venv / "scann-serve")]
    # auto: TensorFlow is not installed, so the bundle runs the version.
    server = ServerProcess(model_name=MODEL, model_base_path=base, command=command)
    with server, RetrievalClient(server.target, model=MODEL) as client:
        result = client.retrieve(["1", "2"])
        status = client.status()
        found = client.search(tiny_spec.user_embeddings[:1])
    truth, scores = tiny_spec.brute_force(["1", "2"], 10)
    assert result.identifiers.tolist() == truth.tolist()
    np.testing.assert_allclose(result.scores, scores, rtol=1e-4, atol=1e-4)
    assert found.identifiers.tolist() == truth[:1].tolist()
    [version] = status.versions
    assert version.state == "AVAILABLE" and "native bundle" in version.error_message
