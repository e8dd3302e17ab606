"""Fixtures for tests/docker: the rendered kustomize overlays (rendered once per session)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from _docker_support import ALL_OVERLAYS, render_overlay


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """overlay name -> the documents `kubectl kustomize` renders for it."""
    if shutil.which("kubectl") is None:
        pytest.skip(
            "kubectl is not installed; it renders the kustomize overlays (kubectl kustomize)"
        )
    return {name: render_overlay(name) for name in ALL_OVERLAYS}


def _cli_help(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    run = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=180)
    if run.returncode != 0:
        pytest.skip(f"{name} --help does not run yet: {run.stderr.strip()[-300:]}")
    return run.stdout


@pytest.fixture(scope="session")
def scann_export_help() -> str:
    """`scann-export --help` (it imports TensorFlow: run once per session)."""
    return _cli_help("scann-export")


@pytest.fixture(scope="session")
def scann_serve_help() -> str:
    """`scann-serve --help`; skips the test while the server is not runnable."""
    return _cli_help("scann-serve")
