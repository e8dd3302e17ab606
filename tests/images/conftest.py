"""Fixtures for tests/images: the engine, the built images and the rendered kind overlay.

Every test module here sets `pytestmark = pytest.mark.image` (excluded from `make test`;
`make image-test` builds the images and runs them). Without podman they skip, with the reason.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

# tests/docker's helpers render the bundle; they are a sibling folder, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docker"))

from _docker_support import render_overlay
from _podman import IMAGES, podman, podman_path


@pytest.fixture(scope="session")
def engine() -> str:
    """podman, with both images built; skips where podman is absent."""
    path = podman_path()
    if path is None:
        pytest.skip(
            "podman is not installed: these tests run the real images with it "
            "(apt-get install podman runc; BUILD.md 'make images')"
        )
    missing = [
        tag for tag in IMAGES.values() if podman("image", "exists", tag, check=False).returncode
    ]
    assert not missing, f"images {missing} are not built; run `make images` first"
    return path


@pytest.fixture(scope="session")
def kind_overlay() -> list[dict[str, Any]]:
    """The documents `kubectl kustomize docker/k8s/overlays/kind` renders."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed; it renders the kind overlay (kubectl kustomize)")
    return render_overlay("kind")
