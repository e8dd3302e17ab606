"""The workspace contract: layout, the single place of the pins, the namespace package."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"client": "client", "export": "export", "serving": "server"}


def _pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def _requirements(folder: str, extra: str | None = None) -> dict[str, str]:
    project = _pyproject(ROOT / folder / "pyproject.toml")["project"]
    deps = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    parsed = {}
    for dep in deps:
        name, _, spec = dep.partition("==")
        parsed[name.split("[")[0].strip()] = spec.strip()
    return parsed


def test_three_distributions_share_one_namespace() -> None:
    for folder, module in PACKAGES.items():
        src = ROOT / folder / "src" / "scann_serving"
        assert not (src / "__init__.py").exists(), f"{src} must stay a PEP 420 namespace"
        assert (src / module / "__init__.py").is_file()


@pytest.mark.parametrize("folder", ["export", "serving"])
def test_tensorflow_side_pins_match_the_single_source(folder: str) -> None:
    pins = _pyproject(ROOT / "pyproject.toml")["tool"]["scann-serving"]["pins"]
    # The server's TensorFlow backend is its `[tensorflow]` extra.
    reqs = _requirements(folder, "tensorflow" if folder == "serving" else None)
    assert reqs["tensorflow"] == pins["tensorflow"]
    assert reqs["scann"] == pins["scann"]
    if folder == "export":
        assert reqs["tensorflow-serving-api"] == pins["tensorflow-serving-api"]
        assert reqs["tf-keras"] == pins["tf-keras"]


def test_server_installs_without_tensorflow() -> None:
    # `pip install scann-serving-server` serves native bundles: ScaNN without its TF extra.
    deps = _pyproject(ROOT / "serving" / "pyproject.toml")["project"]["dependencies"]
    assert not [d for d in deps if d.startswith(("tensorflow", "tf-keras")) or "[tf]" in d]
    assert (
        _requirements("serving")["scann"]
        == (_pyproject(ROOT / "pyproject.toml")["tool"]["scann-serving"]["pins"]["scann"])
    )


def test_client_never_depends_on_tensorflow() -> None:
    names = set(_requirements("client"))
    assert not {n for n in names if n.startswith("tensorflow") or n in {"scann", "tf-keras"}}


def test_installed_runtime_matches_the_pins() -> None:
    import importlib.metadata as md

    pins = _pyproject(ROOT / "pyproject.toml")["tool"]["scann-serving"]["pins"]
    assert md.version("scann") == pins["scann"]
    for dist in ("tensorflow", "tf-keras", "tensorflow-serving-api"):
        assert md.version(dist).startswith(pins[dist].rstrip("*"))


def test_ci_entry_runs_make_test() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in (ROOT / "README.md").read_text()


def test_test_module_basenames_are_unique() -> None:
    # pytest's default (prepend) import mode imports test modules by basename, so two
    # folders with the same test file name break collection of the whole suite.
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
