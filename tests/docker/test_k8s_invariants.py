"""Invariants of the rendered Kubernetes bundle that schemas cannot express.

The server's effective command line is not read from the YAML by hand: the container's env
and args go through the image's real entrypoint script (dry-run mode), exactly as the
container runtime would run it, and the probes/ports/grace are checked against that.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _docker_support import (
    ALL_OVERLAYS,
    K8S_DIR,
    SERVING_OVERLAYS,
    container_env,
    entrypoint_argv,
    image_entrypoint,
    last_flag_values,
    memory_bytes,
    one,
    parse_config,
    parse_dockerfile,
    pod_specs,
    tf_serving_argv_errors,
)

# scann-serve's SIGTERM drain budget (serving/src/scann_serving/server/); TF Serving has none.
DRAIN_FLAG = "drain_grace_seconds"
# Time between the drain ending and SIGKILL, for the process to exit.
EXIT_SLACK_SECONDS = 5
MEMORY_ANNOTATION = "scann-serving.io/model-memory-estimate"
PINNED_IMAGE = re.compile(r"^[^:@\s]+(?::(?!latest$)[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")


def _is_scann_serve(overlay: str) -> bool:
    return SERVING_OVERLAYS[overlay].name.startswith("scann-serve")


def _server(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = one(docs, "Deployment", "scann-serving")
    container = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server"
    )
    return deployment, container


def _server_argv(overlay: str, container: dict[str, Any]) -> list[str]:
    script, image_env = image_entrypoint(SERVING_OVERLAYS[overlay])
    return entrypoint_argv(script, {**image_env, **container_env(container)}, container["args"])


def _port(container: dict[str, Any], ref: int | str) -> int:
    if isinstance(ref, int):
        return ref
    return next(p["containerPort"] for p in container["ports"] if p["name"] == ref)


@pytest.mark.parametrize("overlay", SERVING_OVERLAYS)
def test_probe_and_container_ports_match_server_flags(rendered, overlay: str) -> None:
    deployment, container = _server(rendered[overlay])
    flags = last_flag_values(_server_argv(overlay, container))
    grpc_port, rest_port = int(flags["port"]), int(flags["rest_api_port"])
    assert container["readinessProbe"]["grpc"]["port"] == grpc_port
    assert _port(container, "grpc") == grpc_port
    assert _port(container, "http") == rest_port
    for probe in ("startupProbe", "livenessProbe"):
        assert _port(container, container[probe]["tcpSocket"]["port"]) == grpc_port, probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == rest_port


@pytest.mark.parametrize("overlay", SERVING_OVERLAYS)
def test_liveness_is_process_only_and_readiness_is_model_health(rendered, overlay: str) -> None:
    """Liveness must not depend on a model: a bad new version must not restart a healthy pod."""
    _, container = _server(rendered[overlay])
    for probe in ("livenessProbe", "startupProbe"):
        kinds = set(container[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"}
        assert kinds == {"tcpSocket"}, f"{probe} must be a plain TCP connect, got {kinds}"
    readiness = container["readinessProbe"]
    # service "" = overall server health, which both servers tie to model availability.
    assert readiness["grpc"].get("service", "") == ""


@pytest.mark.parametrize("overlay", SERVING_OVERLAYS)
def test_grace_period_covers_prestop_and_drain(rendered, overlay: str) -> None:
    deployment, container = _server(rendered[overlay])
    flags = last_flag_values(_server_argv(overlay, container))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    if _is_scann_serve(overlay):
        assert DRAIN_FLAG in flags, f"scann-serve drains on SIGTERM; set --{DRAIN_FLAG}"
    drain = float(flags.get(DRAIN_FLAG, 0))
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + drain + EXIT_SLACK_SECONDS, (grace, pre_stop, drain)


@pytest.mark.parametrize("overlay", ALL_OVERLAYS)
def test_memory_limit_holds_two_model_versions(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    if overlay == "kserve":
        owner = one(docs, "InferenceService")
        container = one(docs, "ServingRuntime")["spec"]["containers"][0]
    else:
        owner, container = _server(docs)
    estimate = memory_bytes(owner["metadata"]["annotations"][MEMORY_ANNOTATION])
    resources = container["resources"]
    limit = memory_bytes(resources["limits"]["memory"])
    assert limit >= 2 * estimate, "an availability-preserving reload holds two versions"
    # Guaranteed memory: a reload's peak must not depend on what the node has left.
    assert memory_bytes(resources["requests"]["memory"]) == limit


def _all_containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = [
        (what, spec, c)
        for what, spec in pod_specs(docs)
        for c in spec.get("initContainers", []) + spec["containers"]
    ]
    for runtime in (d for d in docs if d["kind"] == "ServingRuntime"):
        out += [
            (f"ServingRuntime/{runtime['metadata']['name']}", {}, c)
            for c in runtime["spec"]["containers"]
        ]
    return out


@pytest.mark.parametrize("overlay", ALL_OVERLAYS)
def test_images_are_pinned(rendered, overlay: str) -> None:
    for what, _, container in _all_containers(rendered[overlay]):
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, f"{what}: {image} has no tag"
        assert PINNED_IMAGE.match(image), f"{what}: {image} is not pinned (no :latest)"


@pytest.mark.parametrize("overlay", ALL_OVERLAYS)
def test_containers_are_non_root_with_read_only_root(rendered, overlay: str) -> None:
    image_uids = {
        int(parse_dockerfile(p)[1][-1].user.split(":")[0]) for p in SERVING_OVERLAYS.values()
    }
    for what, pod, container in _all_containers(rendered[overlay]):
        sc = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        assert sc.get("runAsNonRoot") is True, what
        assert sc.get("runAsUser") in image_uids, f"{what}: runAsUser must be the images' USER"
        assert container["securityContext"].get("allowPrivilegeEscalation") is False, what
        assert container["securityContext"].get("readOnlyRootFilesystem") is True, what
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], what
        if pod:
            assert pod.get("automountServiceAccountToken") is False, what


@pytest.mark.parametrize("overlay", SERVING_OVERLAYS)
def test_config_flags_point_at_mounted_configmap_files_that_parse(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    deployment, container = _server(docs)
    flags = last_flag_values(_server_argv(overlay, container))
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    files = [("model_config_file", "model_config"), ("monitoring_config_file", "monitoring")]
    if _is_scann_serve(overlay):
        assert flags.get("enable_batching") == "true"
        files.append(("batching_parameters_file", "batching"))
    else:
        # TF Serving's batching session refuses the scalar `k` of the `retrieve` signature.
        assert flags.get("enable_batching", "false") in ("false", "0")
    for flag, kind in files:
        directory, key = posixpath.split(flags[flag])
        config_map = one(docs, "ConfigMap", volumes[mounts[directory]]["configMap"]["name"])
        parse_config(kind, config_map["data"][key])


@pytest.mark.parametrize("overlay", SERVING_OVERLAYS)
def test_servers_poll_the_path_the_export_jobs_write(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    deployment, container = _server(docs)
    flags = last_flag_values(_server_argv(overlay, container))
    _, key = posixpath.split(flags["model_config_file"])
    config_maps = [d for d in docs if d["kind"] == "ConfigMap" and key in d.get("data", {})]
    models = parse_config("model_config", config_maps[0]["data"][key]).model_config_list.config
    served = {m.name: m.base_path for m in models}
    assert container_env(container)["MODEL_NAME"] in served

    def claim_at(spec: dict[str, Any], c: dict[str, Any], path: str) -> str:
        mount = next(m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        return str(volume["persistentVolumeClaim"]["claimName"])

    server_spec = deployment["spec"]["template"]["spec"]
    for what, spec in pod_specs(docs):
        if what.startswith("Deployment"):
            continue
        export = spec["containers"][0]
        env = container_env(export)
        written = posixpath.join(env["MODEL_BASE_PATH"], env["MODEL_NAME"])
        assert served.get(env["MODEL_NAME"]) == written, (
            f"{what} writes {written}, servers read {served}"
        )
        assert claim_at(spec, export, written) == claim_at(server_spec, container, written)
    server_mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
    assert server_mount.get("readOnly") is True


def test_export_job_and_cronjob_run_the_same_pod(rendered) -> None:
    docs = rendered["scann-serve"]
    job = one(docs, "Job")["spec"]["template"]
    cron = one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    assert job == cron


@pytest.mark.parametrize("overlay", SERVING_OVERLAYS)
def test_services_hpa_and_pdb_select_the_server(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    deployment, container = _server(docs)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in container["ports"]}
    services = [d for d in docs if d["kind"] == "Service"]
    assert sorted(s["spec"].get("clusterIP") == "None" for s in services) == [False, True]
    for service in services:
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert {p["name"] for p in service["spec"]["ports"]} == {"grpc", "http"}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2 and "cpu" in container["resources"]["requests"]


def test_tf_serving_command_lines_are_valid_tensorflow_model_server_flags(rendered) -> None:
    """Every flag the tf-serving overlay and the KServe runtime pass exists in TF Serving 2.20."""
    _, container = _server(rendered["tf-serving"])
    argv = _server_argv("tf-serving", container)
    assert argv[0] == "tensorflow_model_server"
    assert tf_serving_argv_errors(argv) == []
    runtime = one(rendered["kserve"], "ServingRuntime")["spec"]["containers"][0]
    argv = _server_argv("tf-serving", runtime)
    assert tf_serving_argv_errors(argv) == []
    flags = last_flag_values(argv)
    assert runtime["readinessProbe"]["grpc"]["port"] == int(flags["port"])
    assert runtime["livenessProbe"]["tcpSocket"]["port"] == int(flags["port"])
    assert runtime["ports"][0]["containerPort"] == int(flags["rest_api_port"])


@pytest.mark.parametrize("overlay", ["scann-serve", "scann-serve-native"])
def test_scann_serve_accepts_every_flag_the_overlay_passes(
    rendered, scann_serve_help: str, overlay: str
) -> None:
    _, container = _server(rendered[overlay])
    argv = _server_argv(overlay, container)
    missing = [a for a in argv[1:] if f"--{a[2:].split('=')[0]}" not in scann_serve_help]
    assert not missing, f"scann-serve --help does not list: {missing}"


def _size_model(path: Path) -> dict[str, int]:
    run = subprocess.run(
        [sys.executable, str(K8S_DIR / "size_model.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = [line.split(": ") for line in run.stdout.splitlines() if not line.startswith("#")]
    return {key: memory_bytes(value) for key, value in lines}


def test_size_model_sizes_from_the_exported_model(tiny_model_base: Path, tmp_path: Path) -> None:
    """docker/k8s/size_model.py: annotation and limit (= 2 x estimate) from a real export."""
    tiny = _size_model(tiny_model_base)
    assert tiny["resources.limits.memory"] == 2 * tiny[MEMORY_ANNOTATION]
    assert tiny["resources.requests.memory"] == tiny["resources.limits.memory"]
    # A catalogue of 1M x 128 float32 embeddings (512 MiB) must dominate the estimate.
    big = tmp_path / "big" / "7"
    shutil.copytree(next(p for p in tiny_model_base.iterdir() if p.name.isdigit()), big)
    manifest = big / "assets.extra" / "scann_manifest.json"
    meta = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**meta, "num_candidates": 1_000_000, "embedding_dim": 128}))
    sized = _size_model(big.parent)
    assert sized[MEMORY_ANNOTATION] >= (512 + 512) * 2**20  # embeddings + TF runtime


def test_size_model_explains_a_path_without_versions(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(K8S_DIR / "size_model.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "has no numeric version directories" in run.stderr
