"""client/ installs into an empty virtualenv without TensorFlow, imports only light modules, and works
on its declared dependency floors (protobuf 5.28, grpcio 1.66, numpy 1.26)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).with_name("_client_smoke.py")
IMPORTED_MODULES = (
    "import json, sys; before = set(sys.modules); import scann_serving.client; "
    "print(json.dumps(sorted(set(sys.modules) - before)))"
)
#: Top-level modules the client must never import (TensorFlow and friends, the proto
#: compiler, test and plotting stacks).
HEAVY_MODULES = frozenset(
    {"tensorflow", "tf_keras", "keras", "scann", "jax", "grpc_tools", "pandas", "matplotlib"}
)
#: grpc submodules only servers need; a client that imports them pays for nothing.
HEAVY_SUBMODULES = ("grpc_health", "grpc_reflection", "grpc_status")
LIST_DISTS = "import importlib.metadata as m, json; print(json.dumps(sorted(d.metadata['Name'].lower().replace('_', '-') for d in m.distributions())))"


def _venv(path: Path, *requirements: str) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build the throwaway virtualenv (pip install uv)")
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    install = [
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        str(REPO / "client"),
        *requirements,
    ]
    subprocess.run(install, check=True, timeout=600)
    return python


def _run(python: Path, *args: str, impl: str | None = None) -> str:
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": impl} if impl else None
    done = subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=120, cwd="/", env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("client-venv") / "venv")


def test_installs_no_tensorflow(fresh_python: Path) -> None:
    dists = set(json.loads(_run(fresh_python, "-c", LIST_DISTS)))
    heavy = ("tensorflow", "tf-keras", "tf-nightly", "keras", "scann", "jax")
    assert not {d for d in dists - {"scann-serving-client"} if d.startswith(heavy)}
    assert {"scann-serving-client", "grpcio", "protobuf", "numpy"} <= dists
    assert dists <= {
        "scann-serving-client",
        "grpcio",
        "protobuf",
        "numpy",
        "typing-extensions",
        "pip",
    }


def test_import_loads_only_the_light_dependencies(fresh_python: Path) -> None:
    # What made importing the client slow was always a heavy module pulled in by accident
    # (TensorFlow, grpc_tools, the reflection/health services). That is the property to
    # guard; how many milliseconds the import takes is the benchmarks' business.
    imported = set(json.loads(_run(fresh_python, "-c", IMPORTED_MODULES)))
    top_level = {name.split(".")[0] for name in imported}
    assert "scann_serving" in top_level
    heavy = top_level & HEAVY_MODULES
    assert not heavy, f"import scann_serving.client imported {sorted(heavy)}"
    assert not {name for name in imported if name.startswith(HEAVY_SUBMODULES)}


@pytest.mark.parametrize("protobuf_impl", ["upb", "python"])
def test_works_end_to_end_without_tensorflow(fresh_python: Path, protobuf_impl: str) -> None:
    facts = json.loads(_run(fresh_python, "-W", "error", str(SMOKE), impl=protobuf_impl))
    assert facts["identifiers"] == [["a-0", "a-1"], ["b-0", "b-1"]]
    assert facts["scores"] == [[0.5, 0.5], [0.5, 0.5]]
    assert facts["async"] == [["b-0", "b-1", "b-2"]]
    assert facts["not_found"] and not facts["tensorflow_imported"]


def test_scann_query_entry_point_is_installed(fresh_python: Path) -> None:
    assert "scann-query" in _run(fresh_python.parent / "scann-query", "--help")


@pytest.mark.parametrize(
    "pins",
    [
        ("protobuf==5.28.0", "grpcio==1.66.0", "numpy==1.26.4"),  # the declared floors
        ("protobuf==6.31.1", "grpcio==1.70.0", "numpy==2.2.6"),  # the major in between
    ],
    ids=["floors", "protobuf6"],
)
def test_works_on_older_runtimes(tmp_path: Path, pins: tuple[str, ...]) -> None:
    python = _venv(tmp_path / "venv", *pins)
    # -W error: no VersionError and no gencode-version warning either.
    facts = json.loads(_run(python, "-W", "error", str(SMOKE)))
    assert facts["versions"] == dict(pin.split("==") for pin in pins)
    assert facts["identifiers"] == [["a-0", "a-1"], ["b-0", "b-1"]] and facts["not_found"]
