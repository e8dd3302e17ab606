"""BUILD.md's commands are real: the files, build arguments, tags and options they use exist,
and agree with the Dockerfiles, the Kubernetes overlays and the scripts the tests run.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _docker_support import (
    DOCKER_DIR,
    DOCKERFILES,
    K8S_DIR,
    REPO_ROOT,
    local_smoke_command,
    option_value,
    parse_dockerfile,
    shell_commands,
)

BUILD_MD = REPO_ROOT / "BUILD.md"
COMMANDS = shell_commands(BUILD_MD)


def _docker(sub: str) -> list[list[str]]:
    return [c for c in COMMANDS if c[:2] == ["docker", sub]]


def _built_tags() -> dict[str, str]:
    """image tag -> Dockerfile key, for every `docker build` in BUILD.md."""
    tags = {}
    for argv in _docker("build"):
        dockerfile = REPO_ROOT / str(option_value(argv, "-f"))
        key = next(k for k, p in DOCKERFILES.items() if p == dockerfile)
        tags[str(option_value(argv, "-t"))] = key
    return tags


def _overlay_tags() -> dict[str, set[str]]:
    """image basename -> the tags the kustomize overlays deploy."""
    tags: dict[str, set[str]] = {}
    for kustomization in (K8S_DIR / "overlays").glob("*/kustomization.yaml"):
        text = kustomization.read_text()
        for name, tag in re.findall(r'newName: \S+/([\w.-]+)\n\s+newTag: "([^"]+)"', text):
            tags.setdefault(name, set()).add(tag)
    return tags


def test_every_dockerfile_has_a_build_command() -> None:
    assert sorted(_built_tags().values()) == sorted(DOCKERFILES)


@pytest.mark.parametrize("argv", _docker("build"), ids=lambda a: str(option_value(a, "-f")))
def test_build_commands_use_real_files_args_and_the_deployed_tags(argv: list[str]) -> None:
    dockerfile = REPO_ROOT / str(option_value(argv, "-f"))
    assert dockerfile.is_file()
    assert argv[-1] == ".", "the build context is the repository root"
    global_args, stages = parse_dockerfile(dockerfile)
    declared = set(global_args).union(*(s.args for s in stages))
    for i, arg in enumerate(argv):
        if arg == "--build-arg":
            name = argv[i + 1].split("=", 1)[0]
            assert name in declared, f"{dockerfile.name} declares no ARG {name}"
    repo, _, tag = str(option_value(argv, "-t")).rpartition(":")
    title = stages[-1].labels["org.opencontainers.image.title"]
    assert repo.rsplit("/", 1)[-1] == title
    assert tag in _overlay_tags()[title], (
        f"overlays deploy {title}:{_overlay_tags()[title]}, not {tag}"
    )


def test_run_and_inspect_commands_use_built_images_and_the_contract() -> None:
    tags = _built_tags()
    runs = _docker("run")
    assert runs, "BUILD.md shows how to run the images"
    for argv in runs:
        image = next(a for a in argv[2:] if a in tags)
        _, stages = parse_dockerfile(DOCKERFILES[tags[image]])
        for i, arg in enumerate(argv):
            if arg == "-e":
                assert argv[i + 1].split("=")[0] in stages[-1].env
            if arg == "-p":
                assert argv[i + 1].rsplit(":", 1)[-1] in stages[-1].expose
            if arg == "-v":
                assert argv[i + 1].split(":")[1].startswith(stages[-1].env["MODEL_BASE_PATH"])
    for argv in _docker("inspect"):
        assert argv[-1] in tags


def test_smoke_test_commands_use_real_options_and_built_images() -> None:
    script = DOCKER_DIR / "smoke_test.sh"
    cases = set(re.findall(r"^\s+(-[\w-]+)(?: \| [\w-]+)?\)", script.read_text(), flags=re.M))
    runs = [c for c in COMMANDS if c[0] == "docker/smoke_test.sh"]
    assert {option_value(c, "--runner") or "docker" for c in runs} == {"docker", "local"}
    tags = _built_tags()
    for argv in runs:
        for previous, arg in itertools.pairwise(argv):
            if arg.startswith("-") and not arg.lstrip("-").isdigit() and previous != "--export-arg":
                assert arg in cases, f"smoke_test.sh has no option {arg}"
        for option in ("--image", "--export-image"):
            if option_value(argv, option):
                assert option_value(argv, option) in tags
    images = {tags[str(option_value(c, "--image"))] for c in runs if option_value(c, "--image")}
    assert images == {"scann-serve", "tf-serving"}, "both serving images have a smoke test"


def _git(repo: Path, *args: str) -> str:
    run = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=True
    )
    return run.stdout.strip()


def _scann_history(repo: Path, versions: list[str]) -> dict[str, str]:
    """A google-research-like repository whose scann/pyproject.toml goes through `versions`
    (as ScaNN writes it, `version = "X"`); version -> the commit that set it."""
    _git(repo.parent, "init", "-q", repo.name)
    pyproject = repo / "scann/pyproject.toml"
    pyproject.parent.mkdir()
    commits = {}
    for version in versions:
        pyproject.write_text(f'[project]\nname = "scann"\nversion = "{version}"\n')
        _git(repo, "add", ".")
        ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
        _git(repo, *ident, "commit", "-qm", f"ScaNN {version}")
        commits[version] = _git(repo, "rev-parse", "HEAD")
    return commits


def test_scann_commit_lookup_finds_the_release_commit(tmp_path: Path) -> None:
    """BUILD.md's lookup, run on a history that moved past the release, prints the commit that
    set the pinned version, and its confirmation names the Dockerfile's pinned commit."""
    args, _ = parse_dockerfile(DOCKERFILES["tf-serving"])
    version = args["SCANN_VERSION"]
    lines = [
        line
        for line in BUILD_MD.read_text().splitlines()
        if line.startswith("git -C google-research ")
    ]
    lookup = next(line for line in lines if " log " in line)
    confirm = next(line for line in lines if " show " in line)
    assert f"{args['SCANN_GIT_COMMIT']}:scann/pyproject.toml" in confirm
    assert f'version = "{version}"' in confirm
    repo = tmp_path / "google-research"
    commits = _scann_history(repo, ["1.4.1", version, "1.4.3"])
    found = subprocess.run(
        ["bash", "-c", lookup],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert found == commits[version]
    own_confirm = confirm.replace(args["SCANN_GIT_COMMIT"], found)
    subprocess.run(["bash", "-c", own_confirm], cwd=tmp_path, check=True, timeout=30)


def test_local_smoke_command_is_the_one_the_tests_run(tmp_path: Path) -> None:
    argv = local_smoke_command(tmp_path)
    assert Path(argv[0]) == DOCKER_DIR / "smoke_test.sh"
    assert option_value(argv, "--model-dir") == str(tmp_path)


README = REPO_ROOT / "README.md"
README_SECTION = "Kubernetes"


def test_readme_kubernetes_commands_match_the_bundle(rendered) -> None:
    """README's Kubernetes section: overlays, namespace and object names exist as rendered."""
    commands = shell_commands(README, README_SECTION)
    build_commands = {tuple(c) for c in _docker("build")}
    for argv in commands:
        if argv[:2] == ["docker", "build"]:
            assert tuple(argv) in build_commands, f"not a BUILD.md command: {argv}"
        if argv[0] != "kubectl":
            continue
        if "-k" in argv:
            overlay = Path(str(option_value(argv, "-k")))
            assert overlay.parent == Path("docker/k8s/overlays") and overlay.name in rendered
            namespaces = {d["metadata"].get("namespace") for d in rendered[overlay.name]}
            assert namespaces == {"scann-serving"}
        namespace = option_value(argv, "-n")
        names = {
            f"{d['kind'].lower()}/{d['metadata']['name']}"
            for docs in rendered.values()
            for d in docs
        }
        if namespace:
            assert namespace == "scann-serving"
            for arg in argv:
                if re.fullmatch(r"(job|deployment|service|cronjob)/[\w-]+", arg):
                    assert arg in names, f"{arg} is not in the bundle"


def test_readme_kubernetes_scann_query_uses_real_options() -> None:
    if shutil.which("scann-query") is None:
        pytest.skip("scann-query is not installed")
    help_text = subprocess.run(
        ["scann-query", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    queries = [c for c in shell_commands(README, README_SECTION) if c[0] == "scann-query"]
    assert queries
    for argv in queries:
        for arg in (a for a in argv if a.startswith("-")):
            assert f" {arg} " in help_text or f"[{arg} " in help_text, f"scann-query has no {arg}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runner", "docker"], "--runner docker needs --image"),
        (["--runner", "podman"], "--runner must be docker or local"),
        (["--model-dri", "x"], "unknown argument '--model-dri'"),
    ],
)
def test_smoke_test_script_explains_bad_usage(args: list[str], message: str) -> None:
    run = subprocess.run(
        [str(DOCKER_DIR / "smoke_test.sh"), *args], capture_output=True, text=True, timeout=30
    )
    assert run.returncode != 0 and message in run.stderr


def test_smoke_export_args_exist_in_scann_export(scann_export_help: str) -> None:
    argv = local_smoke_command()
    for i, arg in enumerate(argv):
        if arg == "--export-arg":
            option = argv[i + 1].split("=")[0]
            assert option in scann_export_help, f"scann-export has no {option}"


def test_smoke_test_help_is_its_usage() -> None:
    run = subprocess.run(
        [str(DOCKER_DIR / "smoke_test.sh"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 64
    assert run.stdout.startswith("Smoke test:") and "--model-dir DIR" in run.stdout
    assert "Needs on the host" in run.stdout
