"""Podman as the image tests use it: the engine, named volumes, pods from Kubernetes YAML.

The pod specs come from `kubectl kustomize` (tests/docker/_docker_support.py); this module
only turns them into what podman runs, changing as little as it must (named below), so the
containers run with the bundle's own image, command, args, env, user and read-only root.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

#: The tags docker/build_images.sh builds and the kind overlay names.
IMAGES = {
    "scann-serve": "scann-serving/scann-serve:0.1.0",
    "scann-serve-native": "scann-serving/scann-serve-native:0.1.0",
    "export": "scann-serving/scann-export:0.1.0",
}


def podman_path() -> str | None:
    """The podman executable, or None where it is not installed."""
    return shutil.which("podman")


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs `podman ARGS`; on failure the error names the command and its stderr."""
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    return proc


def inspect(container: str) -> dict[str, Any]:
    """`podman container inspect` of one container."""
    data: list[dict[str, Any]] = json.loads(podman("container", "inspect", container).stdout)
    return data[0]


def volume_path(volume: str) -> Path:
    """The host directory behind a named volume (rootful podman: under /var/lib/containers)."""
    return Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())


def run_argv(
    pod_spec: Mapping[str, Any],
    image: str,
    *,
    claims: Mapping[str, str],
    name: str,
    extra_volumes: Sequence[str] = (),
    entrypoint: Sequence[str] | None = None,
    args: Sequence[str] | None = None,
) -> list[str]:
    """`podman run` arguments that run the pod spec's first container as Kubernetes would.

    Taken from the spec: command (as --entrypoint), args, literal env, runAsUser/runAsGroup,
    readOnlyRootFilesystem, dropped capabilities, allowPrivilegeEscalation, the memory limit,
    and the mounts: a persistentVolumeClaim becomes the named volume `claims[claimName]`,
    an emptyDir a tmpfs of its sizeLimit. `entrypoint`/`args` replace the container's (to
    run another program of the same image under the same rules).
    """
    container = pod_spec["containers"][0]
    pod_security = pod_spec.get("securityContext", {})
    security = {**pod_security, **container.get("securityContext", {})}
    argv = ["run", "--name", name, "--pull=never"]
    if "runAsUser" in security:
        argv += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', 0)}"]
    if security.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    for cap in security.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", cap]
    if security.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    memory = container.get("resources", {}).get("limits", {}).get("memory")
    if memory:
        argv += ["--memory", memory.replace("Gi", "g").replace("Mi", "m")]
    for env in container.get("env", []):
        if "value" in env:
            argv += ["--env", f"{env['name']}={env['value']}"]
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        source = volumes[mount["name"]]
        ro = ",ro" if mount.get("readOnly") else ""
        if "persistentVolumeClaim" in source:
            claim = claims[source["persistentVolumeClaim"]["claimName"]]
            argv += ["--volume", f"{claim}:{mount['mountPath']}{ro}"]
        elif "emptyDir" in source:
            size = source["emptyDir"].get("sizeLimit", "1Gi").replace("Gi", "g").replace("Mi", "m")
            argv += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
        else:
            raise AssertionError(f"volume {mount['name']}: only claims and emptyDirs are mapped")
    argv += list(extra_volumes)
    command = entrypoint if entrypoint is not None else container.get("command")
    if command:
        argv += ["--entrypoint", json.dumps(list(command))]
    argv.append(image)
    argv += list(args if args is not None else container.get("args", []))
    return argv


def kube_documents(
    deployment: Mapping[str, Any],
    *,
    name: str,
    claims: Mapping[str, str],
    host_ports: Mapping[int, int],
) -> list[dict[str, Any]]:
    """The rendered Deployment as `podman kube play` should run it on this host.

    Changed, and only this: a unique name (runs do not collide), one replica, no namespace,
    each claim renamed to its named volume, each ConfigMap and emptyDir volume prefixed with
    the name (podman keeps both as named volumes; two pods played side by side must not
    share them, nor remove each other's), and `hostPort`s so the ports are published.
    (podman turns the probes into systemd-timer health checks; without systemd it logs that
    it cannot and runs the pod anyway. The tests ask grpc.health, as the readinessProbe does.)
    """
    doc = copy.deepcopy(dict(deployment))
    doc["metadata"]["name"] = name
    doc["metadata"].pop("namespace", None)
    doc["spec"]["replicas"] = 1
    spec = doc["spec"]["template"]["spec"]
    renamed = {}
    for volume in spec.get("volumes", []):
        claim = volume.get("persistentVolumeClaim")
        if claim:
            claim["claimName"] = claims[claim["claimName"]]
        if "configMap" in volume:
            volume["configMap"]["name"] = f"{name}-{volume['configMap']['name']}"
        if "emptyDir" in volume:
            renamed[volume["name"]] = volume["name"] = f"{name}-{volume['name']}"
    for container in spec["containers"]:
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])
    for container in spec["containers"]:
        for port in container.get("ports", []):
            port["hostPort"] = host_ports[port["containerPort"]]
    return [doc]


def write_yaml(path: Path, documents: Sequence[Mapping[str, Any]]) -> Path:
    """Writes `documents` as one multi-document YAML file."""
    path.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
    return path


def started_at(container: str) -> float:
    """The container's start time ("2026-01-02T03:04:05.123456789Z") as a Unix time."""
    text = inspect(container)["State"]["StartedAt"].rstrip("Z")
    seconds, _, fraction = text.partition(".")
    started = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return started.timestamp() + float(f"0.{fraction or 0}")


def server_container(pod_prefix: str) -> str:
    """The name podman gave the Deployment's `server` container (<name>-pod-<n>-server)."""
    names = podman("ps", "--all", "--format", "{{.Names}}").stdout.split()
    (found,) = [n for n in names if n.startswith(f"{pod_prefix}-pod") and n.endswith("-server")]
    return found


def played_volumes(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """The named volumes `kube play` of `documents` creates (ConfigMaps, emptyDirs), which
    `kube down` leaves behind."""
    names = [d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"]
    for doc in documents:
        if doc["kind"] == "Deployment":
            for volume in doc["spec"]["template"]["spec"].get("volumes", []):
                if "emptyDir" in volume:
                    names.append(volume["name"])
    return names
