"""Client, export and server agree on the shared names, and spell each of them only once.

`scann_serving.client.contract` holds the signature names, the tensor names and the paths
inside a version directory. These tests never import TensorFlow: the modules that import
no TensorFlow are imported in a subprocess (which also shows they stay TF-free), and the
ones that do (the exported module, the served version) are read as source with `ast`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scann_serving.client import contract

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "client": ROOT / "client" / "src" / "scann_serving" / "client",
    "export": ROOT / "export" / "src" / "scann_serving" / "export",
    "server": ROOT / "serving" / "src" / "scann_serving" / "server",
}
CONTRACT_MODULE = "scann_serving.client.contract"

#: The same string with another meaning: (package/file, value) -> (most occurrences, why).
SAME_STRING_OTHER_MEANING: dict[tuple[str, str], tuple[int, str]] = {
    ("client/_protocol.py", "k"): (1, "the manifest key of the exported default k"),
    ("client/_types.py", "identifiers"): (1, "RetrievalResult.to_dict() keys its attributes"),
    ("client/_types.py", "scores"): (1, "RetrievalResult.to_dict() keys its attributes"),
    ("export/_manifest.py", "k"): (1, "the manifest key of the exported default k"),
    ("export/_report.py", "k"): (3, "manifest, evaluation and tuning keys"),
    ("export/_measure.py", "k"): (1, "the evaluation record's key"),
    ("export/_tuning.py", "k"): (1, "the tuning record's key"),
    ("export/_cli.py", "embedding"): (1, "default Parquet column of --candidates"),
    ("export/_options.py", "embedding"): (1, "default Parquet column of --candidates"),
    ("export/_cli.py", "serving_default"): (1, "TensorFlow's key, in the user's query tower"),
    ("export/_options.py", "serving_default"): (1, "TensorFlow's key, in the user's query tower"),
    ("export/_own_towers.py", "serving_default"): (1, "TensorFlow's key, in the user's tower"),
    ("export/_module.py", "identifiers"): (1, "the name of the catalogue's tf.Variable"),
    ("client/_tensors.py", "="): (1, "numpy's native byte order"),
    ("server/_config.py", "="): (1, "the flag=value separator"),
}

#: Names a package still spells itself, for now: package -> values.
NOT_YET_SHARED: dict[str, set[str]] = {}

TF_FREE_PROBE = """
import json, sys
from scann_serving.client import _base, _protocol, contract
import scann_serving.export as export
from scann_serving.server import _preflight
print(json.dumps({
    "client_signatures": [_base.SERVING_DEFAULT, _base.RETRIEVE, _base.SEARCH_EMBEDDING,
                          _base.RETRIEVE_WITH_EXCLUSIONS],
    "client_inputs": [_base.QUERY, _base.K, _base.EMBEDDING, _base.EXCLUDE],
    "client_manifest_field": _protocol.MANIFEST_FIELD,
    "export_files": [export.ASSETS_EXTRA, export.MANIFEST_FILENAME, export.WARMUP_FILENAME],
    "server_paths": [_preflight.MANIFEST_RELPATH.as_posix(), _preflight.WARMUP_RELPATH.as_posix()],
    "tensorflow_imported": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
}))
"""


def _modules(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGES[package].rglob("*.py")):
        if path.name == "contract.py" or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        name = f"{package}/{path.relative_to(PACKAGES[package]).as_posix()}"
        yield name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _contract_names(tree: ast.Module) -> dict[str, Any]:
    """Local name -> contract value, for every name the module imports from the contract."""
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == CONTRACT_MODULE:
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(contract, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "scann_serving.client":
            for alias in node.names:
                if alias.name == "contract":
                    names[alias.asname or alias.name] = contract
    return names


def _resolve(node: ast.expr | None, names: dict[str, Any]) -> Any:
    """The value of a constant, a contract name, `contract.X`, or a tuple of them; else None."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        module = names.get(node.value.id)
        return getattr(module, node.attr, None) if module is contract else None
    if isinstance(node, ast.Tuple):
        return tuple(_resolve(element, names) for element in node.elts)
    return None


def _module_constant(package: str, constant: str) -> list[tuple[str, Any]]:
    """(module, resolved value) of every module-level `constant = ...` in the package."""
    found = []
    for module, tree in _modules(package):
        names = _contract_names(tree)
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == constant for t in targets):
                    found.append((module, _resolve(node.value, names)))
    return found


def _string_literals(tree: ast.Module) -> Iterator[str]:
    """String constants in code: docstrings and the text between f-string fields excluded."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values if isinstance(part, ast.Constant))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.value


def test_the_contract_values_are_the_published_ones() -> None:
    # Exported versions, TF Serving clients and users' code depend on these exact strings.
    assert contract.SIGNATURE_NAMES == (
        "serving_default",
        "retrieve",
        "search_embedding",
        "retrieve_with_exclusions",
    )
    assert (contract.QUERY, contract.K, contract.EMBEDDING, contract.EXCLUDE) == (
        "query",
        "k",
        "embedding",
        "exclude",
    )
    assert contract.RETRIEVE_FILTERED == "retrieve_filtered"
    assert contract.OPTIONAL_SIGNATURE_NAMES == ("retrieve_filtered",)
    assert (contract.ALLOW, contract.DENY, contract.NUMERIC) == ("allow", "deny", "numeric")
    assert contract.TOKEN_SEPARATOR == "="
    assert contract.ATTRIBUTES_DIRNAME == "attributes"
    assert contract.ATTRIBUTES_MANIFEST_KEY == "attributes"
    assert contract.OUTPUT_NAMES == (contract.IDENTIFIERS, contract.SCORES)
    assert contract.OUTPUT_NAMES == ("identifiers", "scores")
    assert contract.MANIFEST_PATH == "assets.extra/scann_manifest.json"
    assert contract.WARMUP_PATH == "assets.extra/tf_serving_warmup_requests"
    assert f"{contract.ASSETS_EXTRA}/{contract.MANIFEST_FILENAME}" == contract.MANIFEST_PATH
    assert f"{contract.ASSETS_EXTRA}/{contract.WARMUP_FILENAME}" == contract.WARMUP_PATH
    assert contract.MANIFEST_METADATA_FIELD == "scann_manifest"
    assert sorted(contract.__all__) == sorted(
        name for name in vars(contract) if name.isupper() and not name.startswith("_")
    )


def test_tf_free_modules_of_all_three_packages_agree_without_tensorflow() -> None:
    done = subprocess.run(
        [sys.executable, "-c", TF_FREE_PROBE],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["tensorflow_imported"] == []
    assert tuple(seen["client_signatures"]) == contract.SIGNATURE_NAMES
    assert seen["client_inputs"] == [
        contract.QUERY,
        contract.K,
        contract.EMBEDDING,
        contract.EXCLUDE,
    ]
    assert seen["client_manifest_field"] == contract.MANIFEST_METADATA_FIELD
    assert seen["export_files"] == [
        contract.ASSETS_EXTRA,
        contract.MANIFEST_FILENAME,
        contract.WARMUP_FILENAME,
    ]
    assert seen["server_paths"] == [contract.MANIFEST_PATH, contract.WARMUP_PATH]


def test_the_export_declares_exactly_the_contract_inputs_and_outputs() -> None:
    inputs: set[Any] = set()
    outputs: list[set[Any]] = []
    for _, tree in _modules("export"):
        names = _contract_names(tree)
        specs = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "TensorSpec"
        ]
        if not specs:  # only the module that builds the signatures
            continue
        for spec in specs:
            inputs.update(_resolve(k.value, names) for k in spec.keywords if k.arg == "name")
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and node.keys:
                outputs.append({_resolve(key, names) for key in node.keys})
    assert inputs == {
        contract.QUERY,
        contract.K,
        contract.EMBEDDING,
        contract.EXCLUDE,
        contract.ALLOW,
        contract.DENY,
        contract.NUMERIC,
    }
    # The result of every signature: exactly the contract's outputs.
    assert outputs and all(keys == set(contract.OUTPUT_NAMES) for keys in outputs), outputs


def test_the_server_defaults_and_metadata_fields_come_from_the_contract() -> None:
    default = _module_constant("server", "DEFAULT_SIGNATURE")
    assert [value for _, value in default] == [contract.SERVING_DEFAULT], default
    fields = _module_constant("server", "METADATA_FIELDS")
    assert len(fields) == 1 and contract.MANIFEST_METADATA_FIELD in fields[0][1], fields


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_package_spells_a_contract_name_itself(package: str) -> None:
    shared = {v for n in contract.__all__ if isinstance(v := getattr(contract, n), str)}
    shared -= NOT_YET_SHARED.get(package, set())
    problems = []
    for module, tree in _modules(package):
        counts = Counter(s for s in _string_literals(tree) if s in shared)
        for value, count in sorted(counts.items()):
            allowed, _ = SAME_STRING_OTHER_MEANING.get((module, value), (0, ""))
            if count > allowed:
                problems.append(f"{module} spells {value!r} {count}x (allowed {allowed})")
    assert not problems, (
        "import these names from scann_serving.client.contract instead: " + "; ".join(problems)
    )


def test_every_allowed_spelling_names_a_module_that_exists() -> None:
    for module, _ in SAME_STRING_OTHER_MEANING:
        package, _, path = module.partition("/")
        assert (PACKAGES[package] / path).is_file(), module
