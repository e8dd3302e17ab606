"""The real images, run the way the Kubernetes bundle runs them (podman, `make image-test`).

One story, in order, on one named volume standing in for the `scann-models` claim:
the export image runs as the rendered export Job (its args, env, user, read-only root) and
writes version 1; `podman kube play` runs the kind overlay's rendered Deployment with its
ConfigMap; it becomes SERVING; the official stubs, `RetrievalClient` and REST answer what the
exporter's own fresh-process check answers (and so do the native image and the full image
with `--backend=tensorflow`, played beside it); a broken version never replaces the good one;
a second export under client load takes over without a failed call; SIGTERM drains and the
container exits 0. Start-up and export times go to out/image-test/measurements.json.
"""

from __future__ import annotations

import copy
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from _answers import MODEL, Expected, Load, Pod, tfrecords, via_client, via_rest, via_stubs
from _docker_support import DOCKERFILES, REPO_ROOT, one, parse_dockerfile, pod_specs
from _podman import (
    IMAGES,
    inspect,
    kube_documents,
    played_volumes,
    podman,
    run_argv,
    server_container,
    started_at,
    volume_path,
    write_yaml,
)
from serve_helpers import free_port

pytestmark = [pytest.mark.image, pytest.mark.timeout(1500)]

CLAIM = "scann-models"
EXPORT_TIMEOUT_S = 900
START_TIMEOUT_S = 300
# Model loads and warmup of the demo model take seconds; this bounds "load time" on a busy
# two-core CI machine.
LOAD_ALLOWANCE_S = 120
MEASUREMENTS = REPO_ROOT / "out" / "image-test" / "measurements.json"


def _record(**values: float) -> None:
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data.update({k: round(v, 1) for k, v in values.items()})
    MEASUREMENTS.write_text(json.dumps(data, indent=1) + "\n")


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _flag(args: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{name}="))


# --------------------------------------------------------------------------- the volume
@pytest.fixture(scope="module")
def run_id(engine: str) -> str:
    """A suffix that keeps this run's volume, containers and pod apart from any other."""
    return f"it{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def models_volume(run_id: str) -> Iterator[str]:
    """A named volume for the `scann-models` claim; removed afterwards."""
    name = f"scann-models-{run_id}"
    podman("volume", "create", name)
    try:
        yield name
    finally:
        podman("volume", "rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def job_spec(kind_overlay: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec of the rendered export Job."""
    return dict(pod_specs([one(kind_overlay, "Job", "scann-export")])[0][1])


def run_in_export_image(
    job: dict[str, Any], volume: str, name: str, **overrides: Any
) -> tuple[int, str]:
    """Runs the export image under the Job's pod spec; (exit code, its output)."""
    argv = run_argv(job, IMAGES["export"], claims={CLAIM: volume}, name=name, **overrides)
    try:
        proc = podman(*argv, timeout=EXPORT_TIMEOUT_S, check=False)
        return proc.returncode, proc.stdout + proc.stderr
    finally:
        podman("rm", "--force", name, check=False)


def versions_in(volume: str) -> set[int]:
    """The complete (numeric) versions under the volume's model base path."""
    base = volume_path(volume) / MODEL
    return {int(p.name) for p in base.iterdir() if p.name.isdigit()} if base.is_dir() else set()


@pytest.fixture(scope="module")
def version_1(job_spec: dict[str, Any], models_volume: str, run_id: str) -> Path:
    """Version 1, written by the export image run as the Job runs it."""
    started = time.monotonic()
    code, out = run_in_export_image(job_spec, models_volume, f"export-{run_id}-1")
    assert code == 0, f"the export Job's container exited {code}:\n{out[-4000:]}"
    _record(export_job_seconds=time.monotonic() - started)
    return volume_path(models_volume) / MODEL / "1"


# --------------------------------------------------------------------------- what to expect
@pytest.fixture(scope="module")
def expected(
    job_spec: dict[str, Any],
    models_volume: str,
    version_1: Path,
    run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Expected]:
    """The exporter's own check (scann_serving.export._verify: load in a fresh process,
    replay the warmup requests), run inside the export image on the volume's version 1."""
    from tensorflow_serving.apis import prediction_log_pb2

    out = tmp_path_factory.mktemp("verify")
    out.chmod(0o777)  # the image's user writes the report
    code, log = run_in_export_image(
        job_spec,
        models_volume,
        f"verify-{run_id}",
        extra_volumes=["--volume", f"{out}:/out"],
        entrypoint=["python", "-m", "scann_serving.export._verify"],
        args=[f"/models/{MODEL}/1", "/out/report.json"],
    )
    assert code == 0, f"the exporter's check exited {code}:\n{log[-4000:]}"
    results = json.loads((out / "report.json").read_text())["results"]
    warmup = version_1 / "assets.extra" / "tf_serving_warmup_requests"
    requests_ = [
        prediction_log_pb2.PredictionLog.FromString(r).predict_log.request
        for r in tfrecords(warmup)
    ]
    assert len(requests_) == len(results) > 0
    return [
        Expected(req, res["signature"], res["identifiers"], res["scores"])
        for req, res in zip(requests_, results, strict=True)
    ]


# --------------------------------------------------------------------------- the pod
@contextmanager
def _played(
    kind_overlay: list[dict[str, Any]],
    volume: str,
    name: str,
    folder: Path,
    *,
    image: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Pod]:
    """`podman kube play` of the kind overlay's Deployment and ConfigMap, SERVING; torn
    down afterwards. `image`/`extra_args` swap the server image and append server flags (the
    native image under the same pod spec); the start-to-SERVING time goes to `Pod.started`."""
    # Copies: the rendered overlay is the session's, and two pods are played from it.
    deployment = copy.deepcopy(one(kind_overlay, "Deployment", "scann-serving"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    if image is not None:
        container["image"] = image
    container["args"] = [*container["args"], *extra_args]
    config_map = copy.deepcopy(one(kind_overlay, "ConfigMap"))
    config_map["metadata"].pop("namespace", None)
    config_map["metadata"]["name"] = f"{name}-{config_map['metadata']['name']}"
    ports = {8500: free_port(), 8501: free_port()}
    documents = kube_documents(deployment, name=name, claims={CLAIM: volume}, host_ports=ports)
    play = write_yaml(folder / "deployment.yaml", documents)
    config = write_yaml(folder / "configmap.yaml", [config_map])
    args = container["args"]
    played = Pod(
        play,
        "",
        ports[8500],
        ports[8501],
        float(_flag(args, "file_system_poll_wait_seconds")),
        float(_flag(args, "drain_grace_seconds")),
        int(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]),
    )
    try:
        podman("kube", "play", "--configmap", str(config), str(play), timeout=300)
        played.container = server_container(name)
        played.pod = played.container.removesuffix("-server")
        _wait_for(
            lambda: played.health() == "SERVING" or not played.running(),
            START_TIMEOUT_S,
            f"the played Deployment ({container['image']}) to become SERVING",
        )
        assert played.running(), f"the server container exited:\n{played.logs()}"
        played.started = time.time() - started_at(played.container)
        yield played
    finally:
        podman("kube", "down", str(play), timeout=120, check=False)
        # kube play keeps each ConfigMap and emptyDir in a volume of its name; kube down
        # leaves them.
        for leftover in played_volumes([*documents, config_map]):
            podman("volume", "rm", "--force", leftover, check=False)


@pytest.fixture(scope="module")
def pod(
    kind_overlay: list[dict[str, Any]],
    models_volume: str,
    version_1: Path,
    run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pod]:
    """The kind overlay's Deployment as it is (the full scann-serve image), SERVING."""
    folder = tmp_path_factory.mktemp("kube")
    with _played(kind_overlay, models_volume, f"scann-serving-{run_id}", folder) as played:
        _record(start_to_serving_seconds=played.started)
        yield played


@pytest.fixture
def load(pod: Pod) -> Iterator[Callable[[], Load]]:
    """Starts `Load`s that are stopped after the test, whatever happens in it."""
    started: list[Load] = []

    def start() -> Load:
        started.append(Load(pod))
        return started[-1]

    try:
        yield start
    finally:
        for each in started:
            each.stop()


# --------------------------------------------------------------------------- the story
def test_export_job_writes_version_1_as_the_image_user(version_1: Path) -> None:
    manifest = json.loads((version_1 / "assets.extra" / "scann_manifest.json").read_text())
    assert manifest["model_name"] == MODEL
    assert manifest["verification"]["identical_identifiers"] is True
    user = parse_dockerfile(DOCKERFILES["export"])[1][-1].user
    assert f"{version_1.stat().st_uid}:{version_1.stat().st_gid}" == user


def test_played_deployment_serves_version_1(pod: Pod) -> None:
    from scann_serving.client import RetrievalClient

    assert pod.health() == "SERVING"
    with RetrievalClient(pod.target, model=MODEL) as client:
        status = client.status()
    assert [(v.version, v.state) for v in status.versions] == [(1, "AVAILABLE")]


def _assert_exporters_answers(pod: Pod, expected: list[Expected]) -> None:
    """The stubs, RetrievalClient and REST each answer every warmup request as the
    exporter's check did (identifiers exactly, scores within 1e-4), from version 1."""
    from scann_serving.client import RetrievalClient

    with RetrievalClient(pod.target, model=MODEL) as client:
        for i, case in enumerate(expected):
            what = f"warmup request {i} ({case.signature})"
            ids, scores, version = via_stubs(pod, case)
            assert (ids, version) == (case.identifiers, 1), f"stubs, {what}"
            np.testing.assert_allclose(scores, case.scores, rtol=1e-4, atol=1e-4, err_msg=what)
            ids, scores = via_rest(pod, case)
            assert ids == case.identifiers, f"REST, {what}"
            np.testing.assert_allclose(scores, case.scores, rtol=1e-4, atol=1e-4, err_msg=what)
            answer = via_client(client, case)
            if answer is not None:
                assert answer[0] == case.identifiers, f"RetrievalClient, {what}"
                np.testing.assert_allclose(answer[1], case.scores, rtol=1e-4, atol=1e-4)


def test_stubs_client_and_rest_give_the_exporters_answers(
    pod: Pod, expected: list[Expected]
) -> None:
    _assert_exporters_answers(pod, expected)


class TestNativeImage:
    """The TensorFlow-free image (docker/scann-serve-native.Dockerfile) played from the same
    Deployment, with `--backend=native` appended as its overlay does, on the same volume while
    it holds only version 1: the same answers, no TensorFlow, the same user and read-only root.
    Its pod runs beside the full one and is torn down before the rollover tests."""

    @pytest.fixture(scope="class")
    def native_pod(
        self,
        kind_overlay: list[dict[str, Any]],
        models_volume: str,
        version_1: Path,
        run_id: str,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[Pod]:
        folder = tmp_path_factory.mktemp("kube-native")
        name = f"scann-serving-native-{run_id}"
        with _played(
            kind_overlay,
            models_volume,
            name,
            folder,
            image=IMAGES["scann-serve-native"],
            extra_args=("--backend=native",),
        ) as played:
            _record(native_start_to_serving_seconds=played.started)
            yield played

    def test_serves_version_1_on_the_native_backend(self, native_pod: Pod) -> None:
        from scann_serving.client import RetrievalClient

        assert native_pod.health() == "SERVING"
        with RetrievalClient(native_pod.target, model=MODEL) as client:
            (version,) = client.status().versions
        assert (version.version, version.state) == (1, "AVAILABLE")
        assert version.error_message.startswith("--backend=native:"), version.error_message

    def test_gives_the_exporters_answers(
        self, native_pod: Pod, expected: list[Expected], version_1: Path
    ) -> None:
        """The same answers on every signature the version's native bundle serves; the others
        (`retrieve_filtered` until the backend filters natively) are FAILED_PRECONDITION with
        the fix, as `--backend=native` promises, and the full image serves them."""
        from scann_serving.server._bundle import bundle_dir, read_info

        covered = set(read_info(bundle_dir(version_1)).signatures)
        served = [case for case in expected if case.signature in covered]
        assert served, f"the bundle serves none of the warmup signatures ({sorted(covered)})"
        _assert_exporters_answers(native_pod, served)
        for case in (c for c in expected if c.signature not in covered):
            with pytest.raises(grpc.RpcError) as refused:
                via_stubs(native_pod, case)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, case.signature
            assert "--backend=tensorflow" in str(refused.value.details()), case.signature

    def test_is_at_most_a_quarter_of_the_full_image(self, engine: str) -> None:
        """Issue 13's size target, read from the two images as built (their whole size,
        the shared Debian + Python base layers included)."""
        sizes = {
            name: int(json.loads(podman("image", "inspect", IMAGES[name]).stdout)[0]["Size"])
            for name in ("scann-serve", "scann-serve-native")
        }
        _record(
            full_image_mb=sizes["scann-serve"] / 1e6,
            native_image_mb=sizes["scann-serve-native"] / 1e6,
        )
        assert sizes["scann-serve-native"] * 4 <= sizes["scann-serve"], sizes

    def test_has_no_tensorflow(self, native_pod: Pod) -> None:
        imported = podman(
            "exec", native_pod.container, "python", "-c", "import tensorflow", check=False
        )
        assert imported.returncode != 0
        assert "No module named 'tensorflow'" in imported.stderr, imported.stderr
        # What the running server has mapped: ScaNN's searcher, and nothing of TensorFlow.
        maps = podman("exec", native_pod.container, "sh", "-c", _SERVER_MAPS).stdout
        assert "scann_pybind" in maps and "tensorflow" not in maps, maps[-2000:]

    def test_runs_as_the_image_user_with_a_read_only_root(self, native_pod: Pod) -> None:
        user = parse_dockerfile(DOCKERFILES["scann-serve-native"])[1][-1].user
        uid = podman("exec", native_pod.container, "id", "-u").stdout.strip()
        gid = podman("exec", native_pod.container, "id", "-g").stdout.strip()
        assert f"{uid}:{gid}" == user
        assert inspect(native_pod.container)["HostConfig"]["ReadonlyRootfs"] is True
        for path in ("/opt/venv/probe", "/models/probe"):
            touched = podman("exec", native_pod.container, "touch", path, check=False)
            assert touched.returncode != 0 and "Read-only file system" in touched.stderr, path


class TestTensorflowBackend:
    """The full image played from the same Deployment with `--backend=tensorflow` appended,
    on the same volume while it holds only version 1. The Deployment as it is (`pod`) serves
    the demo natively under `--backend=auto`, so this is the one place a container runs the
    SavedModel: the exporter's answers on every signature, the native pod's top-k, and the
    backend reported where the server reports it. Torn down before the rollover tests."""

    @pytest.fixture(scope="class")
    def tensorflow_pod(
        self,
        kind_overlay: list[dict[str, Any]],
        models_volume: str,
        version_1: Path,
        run_id: str,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[Pod]:
        folder = tmp_path_factory.mktemp("kube-tensorflow")
        name = f"scann-serving-tf-{run_id}"
        with _played(
            kind_overlay, models_volume, name, folder, extra_args=("--backend=tensorflow",)
        ) as played:
            _record(tensorflow_start_to_serving_seconds=played.started)
            yield played

    def test_reports_the_tensorflow_backend(self, tensorflow_pod: Pod) -> None:
        """GetModelStatus, the metadata and the metrics page each name the backend."""
        from scann_serving.client import RetrievalClient

        with RetrievalClient(tensorflow_pod.target, model=MODEL) as client:
            (version,) = client.status().versions
            meta = client.metadata()
        assert (version.version, version.state) == (1, "AVAILABLE")
        assert version.error_message.startswith("--backend=tensorflow:"), version.error_message
        assert meta.manifest["serving_backend"]["backend"] == "tensorflow", meta.manifest
        page = requests.get(f"{tensorflow_pod.rest_url}/monitoring/prometheus/metrics", timeout=10)
        gauge = [
            line
            for line in page.text.splitlines()
            if line.startswith("scann_serving_model_backend{") and f'model="{MODEL}"' in line
        ]
        assert len(gauge) == 1 and 'backend="tensorflow"' in gauge[0], gauge or page.text[-2000:]

    def test_gives_the_exporters_and_the_native_answers(
        self, tensorflow_pod: Pod, pod: Pod, expected: list[Expected]
    ) -> None:
        """Every warmup request (all signatures: the SavedModel serves them all) answers as
        the exporter's check did, and with the same top-k as the Deployment as it is, which
        serves the version natively."""
        from scann_serving.client import RetrievalClient

        with RetrievalClient(pod.target, model=MODEL) as client:
            serving = client.metadata().manifest["serving_backend"]
        assert serving["backend"] == "native", (
            f"the Deployment as it is no longer serves version 1 natively, so this test "
            f"compares TensorFlow with TensorFlow: {serving}"
        )
        _assert_exporters_answers(tensorflow_pod, expected)
        for i, case in enumerate(expected):
            tf_ids, tf_scores, _ = via_stubs(tensorflow_pod, case)
            native_ids, native_scores, _ = via_stubs(pod, case)
            assert tf_ids == native_ids, f"warmup request {i} ({case.signature})"
            np.testing.assert_allclose(tf_scores, native_scores, rtol=1e-4, atol=1e-4)

    def test_runs_tensorflow(self, tensorflow_pod: Pod) -> None:
        """The server process has TensorFlow mapped (the native pod's has none)."""
        maps = podman("exec", tensorflow_pod.container, "sh", "-c", _SERVER_MAPS).stdout
        assert "tensorflow" in maps, maps[-2000:]


# The shared-library paths mapped by the container's scann-serve process (found by its
# command line; the shell running this is not it).
_SERVER_MAPS = (
    'for d in /proc/[0-9]*; do [ "$d" = "/proc/$$" ] && continue; '
    'if grep -q scann-serve "$d/cmdline" 2>/dev/null; then '
    "awk '{print $6}' \"$d/maps\" | sort -u; fi; done"
)


def test_metrics_page_counts_requests(pod: Pod) -> None:
    from scann_serving.client import RetrievalClient

    with RetrievalClient(pod.target, model=MODEL) as client:
        client.retrieve(["1"])
    page = requests.get(f"{pod.rest_url}/monitoring/prometheus/metrics", timeout=10)
    assert page.status_code == 200
    counted = [
        line
        for line in page.text.splitlines()
        if line.startswith("scann_serving_requests_total{") and f'model="{MODEL}"' in line
    ]
    assert counted and all(float(line.rsplit(" ", 1)[1]) > 0 for line in counted), page.text


def test_server_runs_as_the_image_user_and_writes_only_to_its_mounts(pod: Pod) -> None:
    user = parse_dockerfile(DOCKERFILES["scann-serve"])[1][-1].user
    ids = podman("exec", pod.container, "id", "-u").stdout.strip()
    gid = podman("exec", pod.container, "id", "-g").stdout.strip()
    assert f"{ids}:{gid}" == user
    assert inspect(pod.container)["HostConfig"]["ReadonlyRootfs"] is True
    for path in ("/opt/venv/probe", "/models/probe", "/etc/scann-serving/probe"):
        touched = podman("exec", pod.container, "touch", path, check=False)
        assert touched.returncode != 0 and "Read-only file system" in touched.stderr, path
    assert podman("exec", pod.container, "touch", "/tmp/probe", check=False).returncode == 0
    # Nothing written to the container's own layer: every write went to a mount. (podman
    # lists the mount points it created itself, e.g. "A /etc/scann-serving", and parents.)
    mounts = [m["Destination"] for m in inspect(pod.container)["Mounts"]]
    for line in podman("diff", pod.container).stdout.splitlines():
        path = line.split(maxsplit=1)[1]
        assert any(m == path or m.startswith(path.rstrip("/") + "/") for m in mounts), line


def _publish_broken_copy(volume: str, good: int, version: int) -> None:
    """A copy of `good` with its variables and its native bundle truncated (broken for both
    backends: `--backend=auto` would serve an intact bundle natively), published as the
    exporter does (staging directory, then rename), owned by the image's user."""
    base = volume_path(volume) / MODEL
    staging = base / f".staging-broken-{version}"
    shutil.copytree(base / str(good), staging)
    native = staging / "assets.extra" / "native"
    damaged = [*(staging / "variables").glob("variables.data-*"), *native.rglob("*")]
    for path in (p for p in damaged if p.is_file()):
        path.write_bytes(path.read_bytes()[:100])
    for path in [staging, *staging.rglob("*")]:
        shutil.chown(path, 10001, 10001)
    staging.rename(base / str(version))


def test_second_export_under_load_takes_over_without_a_failed_call(
    pod: Pod, job_spec: dict[str, Any], models_volume: str, run_id: str, load: Any
) -> None:
    before = versions_in(models_volume)
    running = load()
    # The Job's container again, one training epoch instead of three: the same export
    # path in half the time (version 1 above is the Job exactly).
    args = [*job_spec["containers"][0]["args"], "--epochs", "1"]
    code, out = run_in_export_image(job_spec, models_volume, f"export-{run_id}-2", args=args)
    assert code == 0, f"the second export exited {code}:\n{out[-4000:]}"
    published = time.monotonic()
    (new,) = versions_in(models_volume) - before
    _wait_for(
        lambda: new in running.versions[-10:],
        pod.poll_seconds + LOAD_ALLOWANCE_S,
        f"version {new} to answer",
    )
    _record(rollover_seconds=time.monotonic() - published)
    running.stop()
    assert running.failures == [], running.failures[:5]
    assert running.calls > 0 and running.versions[0] == max(before)


def test_broken_version_never_replaces_the_good_one(pod: Pod, models_volume: str) -> None:
    from scann_serving.client import RetrievalClient

    good = max(versions_in(models_volume))
    broken = good + 1
    _publish_broken_copy(models_volume, good, broken)
    with RetrievalClient(pod.target, model=MODEL) as client:
        failed = _wait_for(
            lambda: next(
                (v for v in client.status().versions if v.version == broken and v.error_message),
                None,
            ),
            pod.poll_seconds + LOAD_ALLOWANCE_S,
            f"the server to try and refuse version {broken}",
        )
        assert failed.state == "END"
        assert client.retrieve(["1"]).model_version == good
    assert pod.health() == "SERVING"


def test_pod_teardown_turns_health_not_serving_drains_and_exits_0(pod: Pod, load: Any) -> None:
    running = load()
    _wait_for(lambda: running.calls > 20, 60, "calls to be flowing")
    # `podman pod stop` is the pod's deletion: SIGTERM, then SIGKILL after the grace period
    # (and unlike `podman kill`, the Deployment's restartPolicy does not start it again).
    signalled = time.monotonic()
    stopping = subprocess.Popen(
        ["podman", "pod", "stop", "--time", str(pod.grace_seconds), pod.pod],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: pod.health() != "SERVING", 5, "health to leave SERVING")
        assert pod.health() in ("NOT_SERVING", "UNREACHABLE")
        _, err = stopping.communicate(timeout=pod.grace_seconds + 60)
    finally:
        if stopping.poll() is None:
            stopping.kill()
            stopping.wait()
    running.stop()
    assert stopping.returncode == 0, err
    state = inspect(pod.container)["State"]
    assert state["ExitCode"] == 0, pod.logs()
    # Calls sent before the signal finished; after it the server refuses new ones.
    assert [f for f in running.failures if f[0] < signalled] == []
    assert all("Unavailable" in f[2] for f in running.failures), running.failures[:5]
