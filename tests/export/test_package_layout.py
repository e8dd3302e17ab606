"""The export package's shape: its modules import each other without a cycle, its public
surfaces (`scann_serving.export`, `.evaluation`) are what `__all__` says, and importing
them does not import TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import scann_serving.export as export
import scann_serving.export.evaluation as evaluation
from _export_support import tf_env

PACKAGE = "scann_serving.export"
PACKAGE_DIR = Path(export.__file__).resolve().parent


def _module_name(path: Path) -> str:
    return PACKAGE if path.name == "__init__.py" else f"{PACKAGE}.{path.stem}"


def _imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every package module `path` imports, anywhere in the file (top level, inside
    functions, under `TYPE_CHECKING`): a lazy import is still an edge of the design."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from scann_serving.export import _stages` imports the submodule only.
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, for every module of the package."""
    paths = {_module_name(p): p for p in PACKAGE_DIR.glob("*.py")}
    return {name: _imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a list of modules, or None when it is a DAG."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for dep in sorted(graph[node]):
            if found := visit(dep, [*path, node]):
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return None


def test_the_package_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    assert f"{PACKAGE}._stages" in graph[f"{PACKAGE}._pipeline"]  # the walk sees lazy imports
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_shared_types_sit_below_every_step() -> None:
    graph = import_graph()
    assert graph[f"{PACKAGE}._types"] == set()
    for step in ("_stages", "_pipeline", "_cli"):
        assert f"{PACKAGE}._config" in graph[f"{PACKAGE}.{step}"], step


def _public_names(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and name != "annotations"  # `from __future__ import annotations`
    }


@pytest.mark.parametrize("module", [export, evaluation], ids=lambda m: m.__name__)
def test_all_is_exactly_what_the_module_exports(module: ModuleType) -> None:
    assert len(module.__all__) == len(set(module.__all__))
    assert set(module.__all__) == _public_names(module)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_importing_the_public_surfaces_imports_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "from scann_serving.export import *\n"
        "from scann_serving.export.evaluation import *\n"
        "print(sorted({'tensorflow', 'scann', 'matplotlib'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=tf_env(), timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
