"""Fixtures for the reliability tests: one shared real scann-serve hosting several models.

Starting scann-serve costs a TensorFlow import, so the tests that do not stop, secure or
measure the server share one process per backend: `shared_server` runs once with
--backend=native and once with --backend=tensorflow (BACKENDS), so every promise is checked
on both; a test whose promise the backend cannot change marks itself `backend_independent`
and runs on the native one only. Tests that start their own server take the `backend`
fixture (the same two values). The shared server serves, from a --model_config_file:

- `retrieval`: the read-only tiny model (bad input, deadlines, limits);
- `rollover`, `rollback`, `broken`, `atomic`: private copies of it, each in its own base
  path, which the rollover / rollback / broken-version / atomic-publish tests change.

It polls every second and refuses requests of more than MAX_BATCH rows or MAX_MESSAGE bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _rel_support import (
    BACKENDS,
    MAX_BATCH,
    MAX_MESSAGE,
    MUTABLE_MODELS,
    POLL_SECONDS,
    SharedServer,
    assert_backend,
)
from serve_helpers import ServerProcess


def _config_text(bases: dict[str, Path]) -> str:
    entries = "\n".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}'
        for name, base in bases.items()
    )
    return f"model_config_list {{\n{entries}\n}}\n"


#: The TensorFlow backend loads and warms the five models' SavedModels one after another
#: before the server is SERVING; on a busy two-core machine that outlasts ServerProcess's
#: default start timeout.
START_TIMEOUT_SECONDS = 300.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The --backend of a test that starts its own scann-serve: each of BACKENDS."""
    return str(request.param)


@pytest.fixture(scope="session", params=BACKENDS)
def shared_server(
    request: pytest.FixtureRequest,
    tiny_model_base: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SharedServer]:
    """scann-serve with `retrieval` + the mutable models, shared by the reliability tests,
    once per backend (fresh copies of the mutable models for each)."""
    backend = str(request.param)
    root = tmp_path_factory.mktemp(f"reliability_models_{backend}")
    bases = {"retrieval": tiny_model_base}
    for name in MUTABLE_MODELS:
        bases[name] = root / name
        shutil.copytree(tiny_model_base, bases[name])
    config = root / "models.config"
    config.write_text(_config_text(bases))
    process = ServerProcess(
        f"--model_config_file={config}",
        f"--file_system_poll_wait_seconds={POLL_SECONDS}",
        f"--max_request_batch_size={MAX_BATCH}",
        f"--grpc_channel_arguments=grpc.max_receive_message_length={MAX_MESSAGE}",
        f"--backend={backend}",
    )
    process.backend = backend
    process.start(timeout=START_TIMEOUT_SECONDS)
    channel = process.channel()
    try:
        for name in bases:  # the parametrization is only worth something if it took effect
            assert_backend(channel, name, backend)
        yield SharedServer(process, bases, channel, backend)
    finally:
        channel.close()
        process.stop()


@pytest.fixture(scope="session")
def alt_spec() -> Any:
    """A second tiny model's data (other embeddings: other answers for the same queries)."""
    from scann_serving.export.testing import tiny_spec

    return tiny_spec(seed=1)
