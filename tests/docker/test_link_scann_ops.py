"""docker/link_scann_ops.sh: links the ScaNN ops into a TF Serving tree (run by the Dockerfile).

The fake trees here are shaped like the real files the script reads and edits, as checked
against tensorflow/serving 2.20.0 and ScaNN 1.4.2 (BUILD.md, "What was checked"): TF Serving's
WORKSPACE (Bzlmod off, `git_repository` already loaded) and model_servers/BUILD op list;
ScaNN's pyproject.toml, MODULE.bazel (the cnpy pin) and the BUILD files that name
`@local_config_tf`, `@eigen`, `@cnpy` and pybind11. The Bazel build itself only runs in the
image build.

Two opt-in tests apply the script to the real trees where they are on the machine (never
fetched by the tests):
- SCANN_TEST_TF_SERVING_GIT: a tensorflow/serving git directory (bare is fine), read at
  SCANN_TEST_TF_SERVING_REF (default: the tag the Dockerfile pins);
- SCANN_TEST_SCANN_SRC: google-research's scann/ directory at the ScaNN release commit
  (copied, never edited).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _docker_support import DOCKER_DIR, DOCKERFILES, parse_dockerfile

SCRIPT = DOCKER_DIR / "link_scann_ops.sh"
TARGET = "@com_google_scann//scann/scann_ops/cc:scann_ops_static"
FRAMEWORK = "@org_tensorflow//tensorflow/core:framework"
LIB = "@org_tensorflow//tensorflow/core:lib"
CNPY_COMMIT = "57184ee0db37cac383fc29175950747a46a8b512"
DOCKER_ARGS, _ = parse_dockerfile(DOCKERFILES["tf-serving"])
SERVERS_BUILD_PATH = "tensorflow_serving/model_servers/BUILD"

WORKSPACE = """\
workspace(name = "tf_serving")

local_repository(
    name = "ignore_remote_predict",
    path = "tensorflow_serving/experimental/tensorflow/ops/remote_predict/",
)

load("//tensorflow_serving:repo.bzl", "tensorflow_http_archive")
tensorflow_http_archive(
    name = "org_tensorflow",
    git_commit = "72fbba3d20f4616d7312b5e2b7f79daf6e82f2fa",
)

load("//tensorflow_serving:workspace.bzl", "tf_serving_workspace")
tf_serving_workspace()

load("@org_tensorflow//tensorflow:workspace2.bzl", "tf_workspace2")
tf_workspace2()

load("@bazel_tools//tools/build_defs/repo:git.bzl", "git_repository")
"""
SERVERS_BUILD = """\
load("//tensorflow_serving:tensorflow_version.bzl", "if_not_v2", "if_v2")

# This is not inlined by tools bcos inlining non-constant values
# is not provably safe.
SUPPORTED_TENSORFLOW_OPS = if_v2([]) + if_not_v2([
    "@org_tensorflow//tensorflow/contrib:contrib_kernels",
    "@org_tensorflow//tensorflow/contrib:contrib_ops_op_lib",
]) + [
    "@org_tensorflow_text//tensorflow_text:ops_lib",
    "@org_tensorflow_decision_forests//tensorflow_decision_forests/tensorflow/ops/inference:kernel_and_op",
]

cc_library(
    name = "server_lib",
    deps = [
        ":server_core",
        "@org_tensorflow//tensorflow/core:lib",
    ] + SUPPORTED_TENSORFLOW_OPS,
)
"""
PYPROJECT = '[project]\nname = "scann"\nversion = "1.4.2"\n\n[tool.setuptools]\n'
MODULE = f"""\
bazel_dep(name = "eigen", version = "4.0.0-20241125.bcr.2")
bazel_dep(name = "highway", version = "1.3.0", repo_name = "com_google_highway")

tf_configure(
  name = "local_config_tf",
)

git_repository(
  name = "cnpy",
  remote = "https://github.com/sammymax/cnpy.git",
  commit = "{CNPY_COMMIT}",
)
"""
OPS_BUILD = """\
load("@pybind11_bazel//:build_defs.bzl", "pybind_library")

cc_library(
    name = "scann_ops",
    srcs = ["ops/scann_ops.cc"],
    deps = ["//scann/oss_wrappers:tf_dependency"],
    alwayslink = 1,
)

cc_library(
    name = "scann_ops_kernels",
    srcs = ["kernels/scann_ops.cc"],
    deps = [
        "//scann/oss_wrappers:tf_dependency",
        "//scann/utils:io_npy",
    ],
    alwayslink = 1,
)

pybind_library(
    name = "scann_npy",
    srcs = ["scann_npy.cc"],
    deps = [":scann"],
)
"""
WRAPPERS_BUILD = """\
load("@rules_cc//cc:defs.bzl", "cc_library")

cc_library(
    name = "tf_dependency",
    deps = [
        "@local_config_tf//:libtensorflow_framework",
        "@local_config_tf//:tf_header_lib",
    ],
)

cc_library(
    name = "scann_threadpool",
    srcs = ["scann_threadpool.cc"],
    deps = [
        "@com_google_absl//absl/log:check",
        "@eigen",
    ],
)
"""
UTILS_BUILD = """\
cc_library(
    name = "io_npy",
    srcs = ["io_npy.cc"],
    deps = [
        "@cnpy",
        "@com_google_absl//absl/strings:str_format",
    ],
)
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _fake_serving(root: Path) -> Path:
    _write(root, {"WORKSPACE": WORKSPACE, SERVERS_BUILD_PATH: SERVERS_BUILD})
    return root


def _fake_scann(root: Path) -> Path:
    _write(
        root,
        {
            "pyproject.toml": PYPROJECT,
            "MODULE.bazel": MODULE,
            "scann/scann_ops/cc/BUILD.bazel": OPS_BUILD,
            "scann/oss_wrappers/BUILD.bazel": WRAPPERS_BUILD,
            "scann/utils/BUILD.bazel": UTILS_BUILD,
        },
    )
    return root


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    return _fake_serving(tmp_path / "tensorflow-serving"), _fake_scann(tmp_path / "scann-src/scann")


def _link(serving: Path, scann: Path, version: str = "1.4.2") -> subprocess.CompletedProcess[str]:
    argv = [str(SCRIPT), "--serving-src", str(serving), "--scann-src", str(scann)]
    return subprocess.run(
        [*argv, "--scann-version", version], capture_output=True, text=True, timeout=60
    )


def _calls(starlark: str) -> list[tuple[str, list[object], dict[str, object]]]:
    """(function, positional literals, keyword literals) of every top-level call.

    WORKSPACE files are Starlark, whose syntax is a subset of Python's: a file that does not
    parse here would not load in Bazel either.
    """

    def value(node: ast.expr) -> object:
        try:
            return ast.literal_eval(node)
        except ValueError:  # a name or expression (TF Serving's WORKSPACE has a few)
            return ast.unparse(node)

    calls = []
    for stmt in ast.parse(starlark).body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            args = [value(a) for a in call.args]
            kwargs = {str(k.arg): value(k.value) for k in call.keywords}
            calls.append((ast.unparse(call.func), args, kwargs))
    return calls


def _repository(workspace: str, name: str) -> tuple[str, dict[str, object]]:
    found = [(f, kw) for f, _, kw in _calls(workspace) if kw.get("name") == name]
    assert len(found) == 1, f"repository {name} is defined {len(found)} times"
    return found[0]


def _check_linked_serving(serving: Path, workspace_before: str, servers_before: str) -> str:
    """The edits to TF Serving's files: an appended WORKSPACE block and one changed line."""
    workspace = (serving / "WORKSPACE").read_text()
    assert workspace.startswith(workspace_before), "the WORKSPACE is only appended to"
    # The real WORKSPACE already loads `git_repository`: binding it again would not load.
    names = [n for f, a, kw in _calls(workspace) if f == "load" for n in [*a[1:], *kw]]
    assert len(names) == len(set(names)), f"a WORKSPACE name is loaded twice: {names}"
    servers = (serving / SERVERS_BUILD_PATH).read_text()
    changed = set(servers.splitlines()) - set(servers_before.splitlines())
    assert changed == {
        next(line for line in servers.splitlines() if line.startswith("SUPPORTED_TENSORFLOW_OPS"))
    }
    assert f'SUPPORTED_TENSORFLOW_OPS = ["{TARGET}"] + ' in servers
    return workspace


def _check_linked_scann(scann: Path) -> None:
    builds = {p: p.read_text() for p in (scann / "scann").rglob("BUILD*")}
    assert not [p for p, text in builds.items() if "@local_config_tf" in text]
    ops = (scann / "scann/scann_ops/cc/BUILD.bazel").read_text()
    assert ops.count('name = "scann_ops_static"') == 1 and "pybind" not in ops
    static = ops[ops.index('name = "scann_ops_static"') :]
    assert "alwayslink = 1" in static
    assert '":scann_ops"' in static and '":scann_ops_kernels"' in static


def test_links_the_op_library_the_documented_way(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    run = _link(serving, scann)
    assert run.returncode == 0, run.stderr
    workspace = _check_linked_serving(serving, WORKSPACE, SERVERS_BUILD)
    _check_linked_scann(scann)
    wrappers = (scann / "scann/oss_wrappers/BUILD.bazel").read_text()
    tf_dependency = wrappers[wrappers.index('name = "tf_dependency"') :].split(")")[0]
    assert f'"{FRAMEWORK}",\n        "{LIB}",' in tf_dependency
    assert "tensorflow_opensource" not in wrappers
    rule, scann_repo = _repository(workspace, "com_google_scann")
    assert rule == "local_repository" and scann_repo["path"] == str(scann)
    assert (scann / "WORKSPACE").exists(), "local_repository needs a boundary marker"


def test_defines_the_repositories_tf_serving_lacks(trees: tuple[Path, Path]) -> None:
    """@eigen and @cnpy (Bzlmod names in ScaNN's BUILD files) resolve under Bzlmod-off."""
    serving, scann = trees
    assert _link(serving, scann).returncode == 0
    workspace = (serving / "WORKSPACE").read_text()
    _, scann_repo = _repository(workspace, "com_google_scann")
    mapping = scann_repo["repo_mapping"]
    assert mapping == {"@eigen": "@scann_eigen", "@cnpy": "@scann_cnpy"}
    rule, cnpy = _repository(workspace, "scann_cnpy")
    assert rule == "scann_git_repository"
    assert (
        cnpy["commit"] == CNPY_COMMIT and cnpy["remote"] == "https://github.com/sammymax/cnpy.git"
    )
    assert ("load", ["@bazel_tools//tools/build_defs/repo:git.bzl"]) in [
        (f, a) for f, a, kw in _calls(workspace) if kw == {"scann_git_repository": "git_repository"}
    ]
    rule, eigen = _repository(workspace, "scann_eigen")
    eigen_dir = Path(str(eigen["path"]))
    assert rule == "local_repository" and eigen_dir.is_relative_to(serving)
    assert (eigen_dir / "WORKSPACE").is_file()
    [(fn, _, alias)] = _calls((eigen_dir / "BUILD.bazel").read_text())
    assert (fn, alias["name"], alias["actual"]) == ("alias", "eigen", "@eigen_archive//:eigen3")
    # TF's own abseil, protobuf and highway stay: nothing the script adds redefines them.
    defined = {kw.get("name") for _, _, kw in _calls(workspace[len(WORKSPACE) :])}
    assert defined == {None, "scann_eigen", "scann_cnpy", "com_google_scann"}


def test_takes_the_cnpy_pin_from_the_scann_tree(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    other = "0" * 39 + "1"
    (scann / "MODULE.bazel").write_text(MODULE.replace(CNPY_COMMIT, other))
    assert _link(serving, scann).returncode == 0
    _, cnpy = _repository((serving / "WORKSPACE").read_text(), "scann_cnpy")
    assert cnpy["commit"] == other


def test_is_idempotent(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    assert _link(serving, scann).returncode == 0
    files = sorted(p for root in trees for p in root.rglob("*") if p.is_file())
    first = {f: f.read_text() for f in files}
    assert _link(serving, scann).returncode == 0
    assert sorted(p for root in trees for p in root.rglob("*") if p.is_file()) == files
    assert {f: f.read_text() for f in files} == first


def test_reads_the_version_from_pyproject_before_setup_py(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    (scann / "setup.py").write_text('setuptools.setup(name="scann", version="1.3.2")\n')
    run = _link(serving, scann)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    ("manifest", "text"),
    [
        ("pyproject.toml", PYPROJECT.replace("1.4.2", "1.4.1")),
        ("setup.py", 'setuptools.setup(\n    name="scann",\n    version="1.4.1",\n)\n'),
    ],
    ids=["pyproject.toml", "setup.py"],
)
def test_refuses_another_scann_release(trees: tuple[Path, Path], manifest: str, text: str) -> None:
    serving, scann = trees
    (scann / "pyproject.toml").unlink()
    (scann / manifest).write_text(text)
    run = _link(serving, scann)
    assert run.returncode != 0
    assert f"{manifest} declares ScaNN version '1.4.1', expected 1.4.2" in run.stderr
    assert "SCANN_GIT_COMMIT" in run.stderr


def test_refuses_tensorflow_targets_it_cannot_map(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    extra = '\ncc_library(name = "x", deps = ["@local_config_tf//:tf_python"])\n'
    with (scann / "scann/utils/BUILD.bazel").open("a") as f:
        f.write(extra)
    run = _link(serving, scann)
    assert run.returncode != 0
    assert "scann/utils/BUILD.bazel" in run.stderr and "@local_config_tf" in run.stderr


def test_refuses_a_tf_serving_without_the_op_list(trees: tuple[Path, Path]) -> None:
    serving, scann = trees
    (serving / SERVERS_BUILD_PATH).write_text("cc_library(name = 'x')\n")
    run = _link(serving, scann)
    assert run.returncode != 0
    assert "SUPPORTED_TENSORFLOW_OPS" in run.stderr


def test_names_a_wrong_directory(tmp_path: Path) -> None:
    run = _link(tmp_path / "nope", tmp_path / "nope2")
    assert run.returncode != 0 and "not found" in run.stderr


# --------------------------------------------------------------------------- real trees
def _git(git_dir: str, *args: str) -> str:
    run = subprocess.run(
        ["git", "-C", git_dir, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return run.stdout


@pytest.mark.skipif(
    not os.environ.get("SCANN_TEST_TF_SERVING_GIT"),
    reason="opt in with SCANN_TEST_TF_SERVING_GIT=<a tensorflow/serving git directory>",
)
def test_applies_cleanly_to_the_real_tf_serving_tree(tmp_path: Path) -> None:
    git_dir = os.environ["SCANN_TEST_TF_SERVING_GIT"]
    ref = os.environ.get("SCANN_TEST_TF_SERVING_REF", DOCKER_ARGS["TF_SERVING_VERSION"])
    if ref == DOCKER_ARGS["TF_SERVING_VERSION"]:
        commit = _git(git_dir, "rev-parse", f"{ref}^{{commit}}").strip()
        assert commit == DOCKER_ARGS["TF_SERVING_GIT_COMMIT"], (
            "the Dockerfile pins the tag's commit"
        )
    serving = tmp_path / "tensorflow-serving"
    files = {p: _git(git_dir, "show", f"{ref}:{p}") for p in ("WORKSPACE", SERVERS_BUILD_PATH)}
    _write(serving, files)
    assert f'git_commit = "{DOCKER_ARGS["TENSORFLOW_GIT_COMMIT"]}"' in files["WORKSPACE"]
    remote_predict = _git(
        git_dir,
        "show",
        f"{ref}:tensorflow_serving/experimental/tensorflow/ops/remote_predict/BUILD",
    )
    assert f'"{FRAMEWORK}"' in remote_predict and f'"{LIB}"' in remote_predict
    scann = _fake_scann(tmp_path / "scann-src/scann")
    run = _link(serving, scann)
    assert run.returncode == 0, run.stderr
    _check_linked_serving(serving, files["WORKSPACE"], files[SERVERS_BUILD_PATH])


@pytest.mark.skipif(
    not os.environ.get("SCANN_TEST_SCANN_SRC"),
    reason="opt in with SCANN_TEST_SCANN_SRC=<google-research's scann/ at the release commit>",
)
def test_applies_cleanly_to_the_real_scann_tree(tmp_path: Path) -> None:
    scann = tmp_path / "scann-src/scann"
    shutil.copytree(os.environ["SCANN_TEST_SCANN_SRC"], scann, symlinks=True)
    serving = _fake_serving(tmp_path / "tensorflow-serving")
    run = _link(serving, scann, DOCKER_ARGS["SCANN_VERSION"])
    assert run.returncode == 0, run.stderr
    _check_linked_scann(scann)
    builds = "".join(p.read_text() for p in (scann / "scann").rglob("BUILD*"))
    assert "@eigen" in builds and "@cnpy" in builds, "the mapped repositories are used"
