"""Fixtures for tests/docker: the rendered kustomize overlays (rendered once per session)."""

from __future__ import annotations

import shutil
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
