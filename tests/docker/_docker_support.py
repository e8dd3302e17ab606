"""Helpers for tests/docker: render the kustomize bundle, read Dockerfiles, run entrypoints.

Nothing here fakes the thing under test: manifests come from `kubectl kustomize`, command
lines from the real entrypoint scripts (in their dry-run mode), servers are real processes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
K8S_DIR = DOCKER_DIR / "k8s"
DATA_DIR = Path(__file__).resolve().parent / "data"

# Overlay -> the Dockerfile of the image its server container runs.
SERVING_OVERLAYS = {
    "scann-serve": DOCKER_DIR / "scann-serve.Dockerfile",
    "scann-serve-native": DOCKER_DIR / "scann-serve-native.Dockerfile",
    "tf-serving": DOCKER_DIR / "tf-serving.Dockerfile",
    "kind": DOCKER_DIR / "scann-serve.Dockerfile",
}
ALL_OVERLAYS = (*SERVING_OVERLAYS, "kserve")
DOCKERFILES = {
    "tf-serving": DOCKER_DIR / "tf-serving.Dockerfile",
    "scann-serve": DOCKER_DIR / "scann-serve.Dockerfile",
    "scann-serve-native": DOCKER_DIR / "scann-serve-native.Dockerfile",
    "export": DOCKER_DIR / "export.Dockerfile",
}
# The Kubernetes version whose schemas the manifests must satisfy.
K8S_VERSION = "1.34"


# --------------------------------------------------------------------------- kustomize
def render_overlay(name: str) -> list[dict[str, Any]]:
    """All documents `kubectl kustomize docker/k8s/overlays/<name>` renders."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not on PATH"
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S_DIR / "overlays" / name)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(docs: Sequence[Mapping[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single document of `kind` (and `name`), failing clearly otherwise."""
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return dict(found[0])


def pod_specs(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload that runs pods."""
    out = []
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]))
        elif d["kind"] == "CronJob":
            tmpl = spec["jobTemplate"]["spec"]["template"]["spec"]
            out.append((f"CronJob/{d['metadata']['name']}", tmpl))
    return out


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity ("1536Mi", "4Gi", "500M") in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTE]i?)?", str(quantity))
    assert m, f"unsupported memory quantity {quantity!r}"
    powers = {"K": 1, "M": 2, "G": 3, "T": 4, "E": 6}
    unit = m.group(2) or ""
    base = 1024 if unit.endswith("i") else 1000
    return int(float(m.group(1)) * base ** powers.get(unit[:1], 0))


# --------------------------------------------------------------------------- Dockerfiles
@dataclass
class Stage:
    """The instructions of one Dockerfile stage that tests care about."""

    base: str
    name: str | None
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    copies: list[list[str]] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> list[str]:
    lines, buf = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # comment inside a continuation
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    return lines


def _pairs(rest: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in shlex.split(rest) if "=" in tok)


def _substitute(text: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile, with ARG defaults substituted."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        op, _, rest = line.partition(" ")
        op = op.upper()
        scope = stages[-1].args if stages else global_args
        rest_sub = _substitute(rest, {**global_args, **scope})
        if op == "FROM":
            parts = rest_sub.split()
            stages.append(Stage(base=parts[0], name=parts[2] if len(parts) > 2 else None))
        elif op == "ARG":
            key, _, default = rest.partition("=")
            scope[key] = shlex.split(default)[0] if default.strip() else global_args.get(key, "")
        elif op == "ENV":
            stages[-1].env.update(_pairs(rest))
        elif op == "LABEL":
            stages[-1].labels.update(_pairs(rest_sub))
        elif op == "COPY":
            stages[-1].copies.append(rest.split())
        elif op == "EXPOSE":
            stages[-1].expose.extend(rest.split())
        elif op == "USER":
            stages[-1].user = rest.strip()
        elif op == "ENTRYPOINT":
            stages[-1].entrypoint = yaml.safe_load(rest)
    return global_args, stages


def image_script(stage: Stage, image_path: str) -> Path:
    """The docker/ script the final stage COPYs to `image_path`."""
    for tokens in stage.copies:
        srcs = [t for t in tokens if not t.startswith("--")]
        if srcs[-1] == image_path:
            return REPO_ROOT / srcs[0]
    raise AssertionError(f"no COPY puts anything at {image_path}")


def image_entrypoint(dockerfile: Path) -> tuple[Path, dict[str, str]]:
    """(the docker/ entrypoint script, the image's ENV) of a Dockerfile's final stage.

    ENV values that reference other variables (PATH=/opt/venv/bin:$PATH) are left out:
    here the host's PATH (the venv) stands in for the image's.
    """
    _, stages = parse_dockerfile(dockerfile)
    final = stages[-1]
    assert final.entrypoint[:2] == ["/usr/bin/tini", "--"], final.entrypoint
    env = {k: v for k, v in final.env.items() if "$" not in v}
    return image_script(final, final.entrypoint[2]), env


# --------------------------------------------------------------------------- entrypoints
def entrypoint_argv(
    script: Path, env: Mapping[str, str], args: Sequence[str] = (), **extra_env: str
) -> list[str]:
    """The command line `script` would exec, from its ENTRYPOINT_DRY_RUN mode."""
    full_env = {**os.environ, **env, **extra_env, "ENTRYPOINT_DRY_RUN": "1"}
    full_env.setdefault("SCANN_SKIP_CPU_CHECK", "0")
    proc = subprocess.run(
        [str(script), *args], env=full_env, capture_output=True, check=False, timeout=30
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().split("\0")[:-1]


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """A container's literal env values."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def last_flag_values(argv: Sequence[str]) -> dict[str, str]:
    """`--name=value` / bare `--name` flags of an argv; a later flag overrides an earlier one."""
    flags: dict[str, str] = {}
    for arg in argv[1:]:
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            flags[name] = value if eq else "true"
    return flags


@dataclass(frozen=True)
class FlagSpec:
    """A tensorflow_model_server flag: its name and tensorflow::Flag type."""

    name: str
    type: str


def tf_serving_flags() -> dict[str, FlagSpec]:
    """The checked-in flag list of tensorflow_model_server 2.20."""
    specs = {}
    for line in (DATA_DIR / "tensorflow_model_server_2.20_flags.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, typ = line.split()
            specs[name] = FlagSpec(name, typ)
    return specs


def tf_serving_argv_errors(argv: Sequence[str]) -> list[str]:
    """Every argument tensorflow_model_server would not parse, with the reason."""
    specs, errors = tf_serving_flags(), []
    checks = {
        "bool": lambda v: v in ("true", "false", "1", "0"),
        "int32": lambda v: re.fullmatch(r"-?\d+", v) is not None and abs(int(v)) < 2**31,
        "int64": lambda v: re.fullmatch(r"-?\d+", v) is not None,
        "float": lambda v: re.fullmatch(r"-?\d+(\.\d*)?([eE]-?\d+)?", v) is not None,
        "string": lambda v: True,
    }
    for arg in argv[1:]:
        m = re.fullmatch(r"--([A-Za-z0-9_]+)(?:=(.*))?", arg, flags=re.S)
        if not m:
            errors.append(f"{arg!r}: not --name=value (tensorflow::Flags takes no separate value)")
        elif m.group(1) not in specs:
            errors.append(f"{arg!r}: tensorflow_model_server 2.20 has no flag {m.group(1)}")
        elif m.group(2) is None and specs[m.group(1)].type != "bool":
            errors.append(f"{arg!r}: a {specs[m.group(1)].type} flag needs =VALUE")
        elif m.group(2) is not None and not checks[specs[m.group(1)].type](m.group(2)):
            errors.append(f"{arg!r}: not a valid {specs[m.group(1)].type}")
    return errors


# --------------------------------------------------------------------------- processes
# --------------------------------------------------------------------------- config protos
def _config_messages() -> dict[str, Any]:
    """BatchingParameters and MonitoringConfig, which tensorflow-serving-api does not ship.

    Built from TF Serving's .proto field numbers (session_bundle_config.proto,
    monitoring_config.proto), the fields of them this repository's configs may use.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    fdp = descriptor_pb2.FileDescriptorProto(
        name="scann_serving_test/tf_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    f = descriptor_pb2.FieldDescriptorProto
    batching = fdp.message_type.add(name="BatchingParameters")
    for number, name, wrapper in [
        (1, "max_batch_size", "Int64Value"),
        (2, "batch_timeout_micros", "Int64Value"),
        (3, "max_enqueued_batches", "Int64Value"),
        (4, "num_batch_threads", "Int64Value"),
        (5, "thread_pool_name", "StringValue"),
    ]:
        batching.field.add(
            name=name,
            number=number,
            type=f.TYPE_MESSAGE,
            label=f.LABEL_OPTIONAL,
            type_name=f".google.protobuf.{wrapper}",
        )
    batching.field.add(
        name="allowed_batch_sizes", number=6, type=f.TYPE_INT64, label=f.LABEL_REPEATED
    )
    batching.field.add(
        name="pad_variable_length_inputs", number=7, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL
    )
    prometheus = fdp.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    monitoring = fdp.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_OPTIONAL,
        type_name=".tensorflow.serving.PrometheusConfig",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        )
        for name in ("BatchingParameters", "MonitoringConfig")
    }


def parse_config(kind: str, text: str) -> Any:
    """Parse a TF Serving text-proto config file the way the servers do (unknown fields fail).

    kind: "model_config" (ModelServerConfig), "batching" (BatchingParameters) or
    "monitoring" (MonitoringConfig).
    """
    from google.protobuf import text_format

    if kind == "model_config":
        from tensorflow_serving.config import model_server_config_pb2

        message = model_server_config_pb2.ModelServerConfig()
    else:
        cls = _config_messages()["BatchingParameters" if kind == "batching" else "MonitoringConfig"]
        message = cls()
    return text_format.Parse(text, message)


# --------------------------------------------------------------------------- docs
def shell_commands(markdown: Path, section: str | None = None) -> list[list[str]]:
    """The commands in a markdown file's ```bash blocks, one argv per (joined) line.

    With `section`, only the blocks under the `## ` heading that starts with that text.
    """
    text = markdown.read_text()
    if section is not None:
        start = text.index(f"\n## {section}")
        end = text.find("\n## ", start + 1)
        text = text[start : end if end != -1 else len(text)]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(shlex.split(line))
    return commands


def option_value(argv: Sequence[str], option: str) -> str | None:
    """The value after `option` (or in `option=value`) in argv, the last one if repeated."""
    value = None
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value


def local_smoke_command(model_dir: Path | None = None) -> list[str]:
    """BUILD.md's `docker/smoke_test.sh --runner local` command: the one serving `model_dir`
    (--model-dir replaced), or without a model dir the one that exports a fresh model."""
    commands = shell_commands(REPO_ROOT / "BUILD.md")
    argv = list(
        next(
            c
            for c in commands
            if c[0] == "docker/smoke_test.sh"
            and "local" in c
            and ("--model-dir" in c) == bool(model_dir)
        )
    )
    argv[0] = str(REPO_ROOT / argv[0])
    if model_dir is not None:
        argv[argv.index("--model-dir") + 1] = str(model_dir)
    return argv
