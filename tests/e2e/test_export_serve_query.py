"""End to end with the real commands: `scann-export` → `scann-serve` → `scann-query`.

Once, as a user would: export the built-in synthetic two-tower model (small and fast
options), serve the base path with scann-serve as a subprocess, then query it with the
scann-query CLI. The CLI's answer is checked against the official tensorflow-serving-api
stubs and the REST API of the same server (independent clients must agree).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from serve_helpers import (
    ERROR_LINE,
    ServerProcess,
    console_script,
    predict_request,
    run_command,
)

MODEL = "retrieval"
QUERY = "42"
K = 5
EXPORT_OPTIONS = [
    "--dataset=synthetic",
    "--synthetic-users=200",
    "--synthetic-items=300",
    "--synthetic-interactions=3000",
    "--epochs=1",
    "--embedding-dim=8",
    "--eval-queries=50",
    "--latency-queries=20",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base path with version 1 written by `scann-export`."""
    base = tmp_path_factory.mktemp("e2e") / MODEL
    done = run_command(
        console_script("scann-export"), f"--output={base}", f"--model-name={MODEL}", *EXPORT_OPTIONS
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {base / '1'}" in done.stdout + done.stderr
    # First contact is quiet: no ERROR line (TensorFlow's no-GPU cuInit probe included).
    errors = [line for line in done.stderr.splitlines() if ERROR_LINE.search(line)]
    assert not errors, errors
    assert (base / "1" / "saved_model.pb").is_file()
    assert (base / "1" / "assets.extra" / "scann_manifest.json").is_file()
    return base


@pytest.fixture(scope="module")
def served(exported: Path) -> Iterator[ServerProcess]:
    """`scann-serve` over the exported base path."""
    with ServerProcess(model_name=MODEL, model_base_path=exported) as server:
        yield server


def _query(server: ServerProcess, *args: str) -> dict:
    done = run_command(
        console_script("scann-query"),
        f"--target={server.target}",
        f"--model={MODEL}",
        "--json",
        *args,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_export_serve_query(served: ServerProcess) -> None:
    status = _query(served, "status")
    assert "AVAILABLE" in json.dumps(status), status
    result = _query(served, f"--query={QUERY}", f"-k={K}")
    assert result["model_name"] == MODEL and result["model_version"] == 1
    assert len(result["identifiers"]) == 1 and len(result["identifiers"][0]) == K
    scores = result["scores"][0]
    assert scores == sorted(scores, reverse=True), "scores must come best first"
    assert result["identifiers"][0] == _official_stub_answer(served), (
        "CLI and official stubs disagree"
    )
    assert result["identifiers"][0] == _rest_answer(served), "CLI and REST disagree"


def _official_stub_answer(server: ServerProcess) -> list[str]:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = predict_request(MODEL, [QUERY], k=K)
    with server.channel() as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=10
        )
    assert reply.model_spec.version.value == 1
    return [v.decode() for v in reply.outputs["identifiers"].string_val]


def _rest_answer(server: ServerProcess) -> list[str]:
    body: dict[str, Any] = {"signature_name": "retrieve", "inputs": {"query": [QUERY], "k": K}}
    reply = requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    return list(reply.json()["outputs"]["identifiers"][0])
