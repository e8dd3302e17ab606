"""Every rendered manifest validates offline against the Kubernetes JSON schemas.

Core kinds use kubernetes-validate's strict schemas (unknown fields are errors); the KServe
CRDs use the schemas in schemas/, whose containers/metadata refer to the same core schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
from _docker_support import ALL_OVERLAYS, K8S_VERSION
from kubernetes_validate import utils as kv_utils

SCHEMAS = Path(__file__).resolve().parent / "schemas"
VERSIONS = sorted(
    {K8S_VERSION, kv_utils.major_minor(kv_utils.latest_version())},
    key=lambda v: tuple(map(int, v.split("."))),
)


def _crd_schema_file(doc: dict[str, Any]) -> Path | None:
    group, _, version = doc["apiVersion"].rpartition("/")
    if not group.endswith("kserve.io"):
        return None
    return SCHEMAS / f"{doc['kind'].lower()}-{group.split('.')[0]}-{version}.json"


def _validate_crd(doc: dict[str, Any], schema_file: Path, version: str) -> None:
    patch = next(v for v in kv_utils.all_versions() if kv_utils.major_minor(v) == version)
    defs = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{patch}-local-strict/_definitions.json", version
    )
    schema = json.loads(schema_file.read_text())
    registry = referencing.Registry().with_resources(
        [(defs["$id"], referencing.Resource.from_contents(defs))]
    )
    jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("overlay", ALL_OVERLAYS)
def test_every_manifest_validates(rendered, overlay: str, version: str) -> None:
    problems = []
    for doc in rendered[overlay]:
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        crd_schema = _crd_schema_file(doc)
        try:
            if crd_schema is not None:
                assert crd_schema.is_file(), f"no schema {crd_schema.name} for {what}"
                _validate_crd(doc, crd_schema, version)
            else:
                kubernetes_validate.validate(doc, version, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            problems.append(f"{what}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{what}: {exc.message}")
    assert not problems, f"overlay {overlay} against Kubernetes {version}:\n" + "\n".join(problems)


def test_crd_schemas_reject_what_kserve_rejects(rendered) -> None:
    """The hand-written CRD schemas are not vacuous: a typo'd or wrong field fails."""
    runtime = next(d for d in rendered["kserve"] if d["kind"] == "ServingRuntime")
    schema = _crd_schema_file(runtime)
    assert schema is not None
    broken = json.loads(json.dumps(runtime))
    broken["spec"]["containers"][0]["imagee"] = broken["spec"]["containers"][0].pop("image")
    with pytest.raises(jsonschema.ValidationError, match="imagee"):
        _validate_crd(broken, schema, K8S_VERSION)
    isvc = next(d for d in rendered["kserve"] if d["kind"] == "InferenceService")
    broken = json.loads(json.dumps(isvc))
    broken["spec"]["predictor"]["model"]["storageUri"] = "/local/path"
    with pytest.raises(jsonschema.ValidationError):
        _validate_crd(broken, _crd_schema_file(isvc), K8S_VERSION)  # type: ignore[arg-type]


def test_core_schema_is_strict(rendered) -> None:
    """A misspelled field in a core kind fails validation (strict schemas are in use)."""
    deployment = next(d for d in rendered["scann-serve"] if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
