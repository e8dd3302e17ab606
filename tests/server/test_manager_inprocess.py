"""ModelManager in process over fake versions in tmp_path, driven by `poll_once()`:
version policies, labels, retries, and the availability-preserving swap (a broken version
never replaces a good one, the old version serves until the new one is AVAILABLE, a
deleted version is unloaded). No TensorFlow."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fake_servable import publish_version
from _inprocess_harness import MODEL, Harness, metric_value, wait_until
from scann_serving.server._errors import InvalidArgument, NotFound
from scann_serving.server._manager import ModelManager
from tensorflow_serving.config import model_server_config_pb2


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path) as h:
        yield h


def states(manager: ModelManager, name: str = MODEL) -> dict[int, str]:
    return {r.version: r.state for r in manager.status(name, None, None)}


def serving(manager: ModelManager, version: int | None = None, label: str | None = None) -> int:
    return manager.resolve(MODEL, version, label).version


def model_config(
    base: Path, *, policy: str = "latest", versions: tuple[int, ...] = (), **labels: int
) -> model_server_config_pb2.ModelServerConfig:
    """A one-model ModelServerConfig with a version policy and labels."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path = MODEL, str(base)
    if policy == "all":
        model.model_version_policy.all.SetInParent()
    elif policy == "specific":
        model.model_version_policy.specific.versions.extend(versions)
    elif versions:
        model.model_version_policy.latest.num_versions = versions[0]
    for label, version in labels.items():
        model.version_labels[label] = version
    return config


def test_nothing_is_served_until_a_version_exists(harness: Harness) -> None:
    manager = harness.manager()
    manager.poll_once()
    assert not manager.all_ready()
    with pytest.raises(NotFound, match="no version is available yet"):
        serving(manager)

    publish_version(harness.base, 1)
    manager.poll_once()
    assert manager.all_ready()
    assert serving(manager) == 1
    assert harness.loader.servables[(MODEL, 1)].warmups == [1]


def test_latest_policy_swaps_to_the_new_version_and_unloads_the_old(harness: Harness) -> None:
    publish_version(harness.base, 1)
    manager = harness.manager()
    manager.poll_once()
    publish_version(harness.base, 2)
    publish_version(harness.base / ".staging-3", 1)  # hidden: never a version
    manager.poll_once()

    assert states(manager) == {2: "AVAILABLE", 1: "END"}
    assert serving(manager) == 2
    with pytest.raises(NotFound, match=r"Specific\(fake, 1\)"):
        serving(manager, 1)
    assert metric_value(harness.metrics, "model_unloads_total", version="1") == 1
    assert metric_value(harness.metrics, "model_loads_total", result="success") == 2


def test_latest_num_versions_keeps_the_newest_n(harness: Harness) -> None:
    for version in (1, 2, 3):
        publish_version(harness.base, version)
    manager = harness.manager(model_config(harness.base, versions=(2,)))
    manager.poll_once()

    assert states(manager) == {3: "AVAILABLE", 2: "AVAILABLE"}
    assert [serving(manager), serving(manager, 2)] == [3, 2]
    assert harness.loader.loads_of(1) == 0
    assert [v for _, v in harness.loader.calls] == [3, 2]  # newest first


def test_all_and_specific_policies(harness: Harness) -> None:
    for version in (1, 2, 3):
        publish_version(harness.base, version)
    manager = harness.manager(model_config(harness.base, policy="all"))
    manager.poll_once()
    assert states(manager) == {3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"}

    manager.set_models(model_config(harness.base, policy="specific", versions=(1, 3)))

    assert states(manager) == {3: "AVAILABLE", 2: "END", 1: "AVAILABLE"}
    assert [serving(manager), serving(manager, 1)] == [3, 1]
    with pytest.raises(NotFound):
        serving(manager, 2)


def test_labels_name_versions(harness: Harness) -> None:
    for version in (1, 2):
        publish_version(harness.base, version)
    manager = harness.manager(model_config(harness.base, policy="all", stable=1, canary=2))
    manager.poll_once()

    assert serving(manager, label="stable") == 1
    assert serving(manager, label="canary") == 2
    assert [r.version for r in manager.status(MODEL, None, "stable")] == [1]
    with pytest.raises(InvalidArgument, match=r"label: beta .*\['canary', 'stable'\]"):
        serving(manager, label="beta")


def test_broken_new_version_never_replaces_the_good_one(harness: Harness) -> None:
    publish_version(harness.base, 1)
    manager = harness.manager(max_num_load_retries=1)
    manager.poll_once()
    publish_version(harness.base, 2, "broken")

    for _ in range(4):  # the first attempt, one retry, then no more
        manager.poll_once()

    assert states(manager) == {2: "END", 1: "AVAILABLE"}
    assert serving(manager) == 1
    [broken] = manager.status(MODEL, 2, None)
    assert (broken.error_code, broken.error_message) == (
        "UNKNOWN",
        f"{harness.base / '2'}: the fake SavedModel is damaged; re-export it",
    )
    assert harness.loader.loads_of(2) == 2
    assert metric_value(harness.metrics, "model_loads_total", version="2", result="failure") == 2

    publish_version(harness.base, 3)
    manager.poll_once()
    assert states(manager) == {3: "AVAILABLE", 2: "END", 1: "END"}
    assert serving(manager) == 3


@pytest.mark.parametrize(
    ("behaviour", "code", "message", "attempts"),
    [
        ("crash", "UNKNOWN", "RuntimeError: the fake loader crashed", 3),
        ("bad_warmup", "UNKNOWN", "warmup request 0", 3),
        ("preflight", "FAILED_PRECONDITION", "built with tensorflow 0.1", 1),  # never retried
    ],
)
def test_failed_loads_are_reported_and_keep_the_old_version(
    harness: Harness, behaviour: str, code: str, message: str, attempts: int
) -> None:
    publish_version(harness.base, 1)
    manager = harness.manager(max_num_load_retries=2)
    manager.poll_once()
    publish_version(harness.base, 2, behaviour)

    for _ in range(5):
        manager.poll_once()

    [record] = manager.status(MODEL, 2, None)
    assert (record.state, record.error_code) == ("END", code)
    assert message in record.error_message
    assert harness.loader.loads_of(2) == attempts
    assert serving(manager) == 1


def test_old_version_serves_until_the_new_one_is_available(harness: Harness) -> None:
    publish_version(harness.base, 1)
    manager = harness.manager()
    manager.poll_once()
    publish_version(harness.base, 2)
    harness.loader.load_gate.close()

    polling = harness.in_thread(manager.poll_once)
    harness.loader.load_gate.wait_held(1)  # version 2 is being loaded
    assert states(manager) == {2: "LOADING", 1: "AVAILABLE"}
    assert serving(manager) == 1
    assert manager.all_ready()

    harness.loader.load_gate.open()
    polling.result(timeout=10)
    assert states(manager) == {2: "AVAILABLE", 1: "END"}
    assert serving(manager) == 2


def test_deleted_version_is_unloaded(harness: Harness) -> None:
    for version in (1, 2):
        publish_version(harness.base, version)
    manager = harness.manager(model_config(harness.base, policy="all"))
    manager.poll_once()

    shutil.rmtree(harness.base / "1")
    manager.poll_once()

    assert states(manager) == {2: "AVAILABLE", 1: "END"}
    with pytest.raises(NotFound):
        serving(manager, 1)
    assert metric_value(harness.metrics, "model_unloads_total", version="1") == 1


def test_deleting_the_newest_version_rolls_back_to_the_previous(harness: Harness) -> None:
    publish_version(harness.base, 1)
    manager = harness.manager(load_retry_interval_micros=3_600_000_000)  # no failure retries
    manager.poll_once()
    publish_version(harness.base, 2)
    manager.poll_once()
    assert states(manager) == {2: "AVAILABLE", 1: "END"}

    shutil.rmtree(harness.base / "2")
    manager.poll_once()

    assert states(manager) == {2: "END", 1: "AVAILABLE"}
    assert serving(manager) == 1
    assert harness.loader.loads_of(1) == 2


def test_unlistable_base_path_keeps_what_is_serving(harness: Harness) -> None:
    publish_version(harness.base, 1)
    manager = harness.manager()
    manager.poll_once()

    moved = harness.base.rename(harness.base.with_name("elsewhere"))
    manager.poll_once()
    assert states(manager) == {1: "AVAILABLE"}

    moved.rename(harness.base)
    publish_version(harness.base, 2)
    manager.poll_once()
    assert serving(manager) == 2


def test_warmup_runs_the_configured_iterations_or_not_at_all(harness: Harness) -> None:
    publish_version(harness.base, 1)
    harness.manager(num_request_iterations_for_warmup=3).poll_once()
    assert harness.loader.servables[(MODEL, 1)].warmups == [3]

    harness.manager(enable_model_warmup=False).poll_once()
    assert harness.loader.servables[(MODEL, 1)].warmups == []  # the second load's servable


def test_polling_thread_loads_once_when_the_poll_wait_is_zero(harness: Harness) -> None:
    publish_version(harness.base, 1)
    manager = harness.manager(file_system_poll_wait_seconds=0)
    manager.start()

    wait_until(manager.all_ready, "the polling thread to load version 1")
    assert serving(manager) == 1
