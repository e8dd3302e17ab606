"""Session-wide fixtures shared by every test folder.

TensorFlow takes seconds to import and a model seconds to build, so the expensive things
here are session-scoped and built once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _suite_guard import RunCap, exit_without_waiting, leak_check

# Before anything imports TensorFlow: quiet logs, and the Keras 2 API TFRS needs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL_NAME = "retrieval"
_RUN_CAP = RunCap.from_env()
_EXIT_STATUS = {"value": 0}


def pytest_configure(config: pytest.Config) -> None:
    """Arms the whole-run cap (tests/_suite_guard.py)."""
    if not hasattr(config, "workerinput"):
        _RUN_CAP.start(config)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remembers the exit status for `pytest_unconfigure`."""
    _EXIT_STATUS["value"] = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """After the summary: never wait for a thread or child a failed test left behind."""
    _RUN_CAP.cancel()
    exit_without_waiting(_EXIT_STATUS["value"])


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fails the test that leaves a thread or a child process running."""
    with leak_check():
        yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_spec():
    """The data behind `tiny_model_base` (users, items, embeddings, brute-force truth)."""
    from scann_serving.export.testing import tiny_spec as make_spec

    return make_spec()


@pytest.fixture(scope="session")
def tiny_model_base(tmp_path_factory: pytest.TempPathFactory, tiny_spec) -> Path:
    """A model base path holding version 1 of a tiny real ScaNN model named `retrieval`.

    Read-only for tests: copy it (shutil.copytree) before adding or breaking versions.
    """
    from scann_serving.export.testing import make_tiny_version

    base = tmp_path_factory.mktemp("tiny_model") / TINY_MODEL_NAME
    make_tiny_version(base, model_name=TINY_MODEL_NAME, spec=tiny_spec)
    return base


@pytest.fixture(scope="session")
def tiny_server(tiny_model_base: Path):
    """One real `scann-serve` (gRPC + REST) over `tiny_model_base`, shared by every folder.

    Starting a server costs seconds (TensorFlow import, load, warmup), so tests that only
    read from the default configuration share this one. Tests that change flags, versions
    or kill the server start their own `serve_helpers.ServerProcess`.
    """
    from serve_helpers import ServerProcess

    process = ServerProcess(model_name=TINY_MODEL_NAME, model_base_path=tiny_model_base)
    process.start()
    yield process
    process.stop()
