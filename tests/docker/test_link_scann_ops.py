"""docker/link_scann_ops.sh: links the ScaNN ops into a TF Serving tree (run by the Dockerfile).

The trees here hold the parts of the real files the script edits (TF Serving 2.x's
model_servers/BUILD op list and WORKSPACE; ScaNN's oss_wrappers and scann_ops BUILD files);
the Bazel build itself only runs in the image build (BUILD.md).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _docker_support import DOCKER_DIR

SCRIPT = DOCKER_DIR / "link_scann_ops.sh"
TARGET = "@com_google_scann//scann/scann_ops/cc:scann_ops_static"

SERVERS_BUILD = """\
# This is not inlined by tools bcos inlining non-constant values
# is not provably safe.
SUPPORTED_TENSORFLOW_OPS = if_v2([]) + if_not_v2([
    "@org_tensorflow//tensorflow/contrib:contrib_kernels",
]) + [
    "@org_tensorflow_text//tensorflow_text:ops_lib",
]

cc_library(
    name = "server_lib",
    deps = [
        ":server_core",
    ] + SUPPORTED_TENSORFLOW_OPS,
)
"""
OPS_BUILD = """\
load("@pybind11_bazel//:build_defs.bzl", "pybind_library")

cc_library(
    name = "scann_ops",
    srcs = ["scann_ops.cc"],
)

pybind_library(
    name = "scann_npy",
    srcs = ["scann_npy.cc"],
    deps = [":scann"],
)
"""
WRAPPERS_BUILD = """\
cc_library(
    name = "tf_dependency",
    deps = [
        "@local_config_tf//:libtensorflow_framework",
        "@local_config_tf//:tf_header_lib",
    ],
)
"""


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    serving = tmp_path / "tensorflow-serving"
    (serving / "tensorflow_serving/model_servers").mkdir(parents=True)
    (serving / "tensorflow_serving/model_servers/BUILD").write_text(SERVERS_BUILD)
    (serving / "WORKSPACE").write_text('workspace(name = "tf_serving")\n')
    scann = tmp_path / "scann-src/scann"
    (scann / "scann/scann_ops/cc").mkdir(parents=True)
    (scann / "scann/oss_wrappers").mkdir(parents=True)
    (scann / "scann/scann_ops/cc/BUILD.bazel").write_text(OPS_BUILD)
    (scann / "scann/oss_wrappers/BUILD.bazel").write_text(WRAPPERS_BUILD)
    (scann / "setup.py").write_text(
        'setuptools.setup(\n    name="scann",\n    version="1.4.2",\n)\n'
    )
    return serving, scann


def _link(serving: Path, scann: Path, version: str = "1.4.2") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(SCRIPT),
            "--serving-src",
            str(serving),
            "--scann-src",
            str(scann),
            "--scann-version",
            version,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_links_the_op_library_the_documented_way(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    run = _link(serving, scann)
    assert run.returncode == 0, run.stderr
    servers_build = (serving / "tensorflow_serving/model_servers/BUILD").read_text()
    assert f'SUPPORTED_TENSORFLOW_OPS = ["{TARGET}"] + if_v2([])' in servers_build
    workspace = (serving / "WORKSPACE").read_text()
    assert 'local_repository(\n    name = "com_google_scann",' in workspace
    assert f'path = "{scann}"' in workspace
    ops = (scann / "scann/scann_ops/cc/BUILD.bazel").read_text()
    assert 'name = "scann_ops_static"' in ops and "alwayslink = 1" in ops
    assert "pybind" not in ops
    wrappers = (scann / "scann/oss_wrappers/BUILD.bazel").read_text()
    assert "@local_config_tf" not in wrappers
    assert "@org_tensorflow//tensorflow/core:tensorflow_opensource" in wrappers
    assert (scann / "WORKSPACE").exists()


def test_is_idempotent(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    assert _link(serving, scann).returncode == 0
    files = [
        serving / "tensorflow_serving/model_servers/BUILD",
        serving / "WORKSPACE",
        scann / "scann/scann_ops/cc/BUILD.bazel",
        scann / "scann/oss_wrappers/BUILD.bazel",
    ]
    first = [f.read_text() for f in files]
    assert _link(serving, scann).returncode == 0
    assert [f.read_text() for f in files] == first


def test_refuses_another_scann_release(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    (scann / "setup.py").write_text('setuptools.setup(name="scann", version="1.3.2")\n')
    run = _link(serving, scann)
    assert run.returncode != 0
    assert "declares ScaNN version '1.3.2', expected 1.4.2" in run.stderr
    assert "SCANN_GIT_COMMIT" in run.stderr


def test_refuses_a_tf_serving_without_the_op_list(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    (serving / "tensorflow_serving/model_servers/BUILD").write_text("cc_library(name = 'x')\n")
    run = _link(serving, scann)
    assert run.returncode != 0
    assert "SUPPORTED_TENSORFLOW_OPS" in run.stderr


def test_names_a_wrong_directory(tmp_path: Path) -> None:
    run = _link(tmp_path / "nope", tmp_path / "nope2")
    assert run.returncode != 0 and "not found" in run.stderr
