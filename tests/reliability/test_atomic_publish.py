"""Promise 3 — atomic publish: an exporter SIGKILLed mid-write publishes nothing.

A real exporter process (a Python subprocess calling the export API's
`make_tiny_version`, which writes the SavedModel, warmup and manifest into a hidden
staging directory and renames it) is SIGKILLed — with its whole process group — at a
chosen point of the write, while the shared server polls the base path every second.
Promised: no numeric version directory appears, the server never tries to load anything
(no load attempt in its status, metrics or log), and a rerun publishes normally (and
clears the dead exporter's staging directory).

Backend-independent (run on the native shared server only): what is promised is what the
exporter leaves on disk and that the manager's poll never picks up a staging directory,
both before any backend is chosen; loading the rerun's complete version on each backend is
what test_rollover checks on both.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from _rel_support import (
    POLL_SECONDS,
    Load,
    SharedServer,
    backend_independent,
    failures,
    latest_version,
    metric,
    metrics_text,
    model_status,
    wait_until,
)

pytestmark = backend_independent

MODEL = "atomic"
EXPORTER = (
    "import sys\n"
    "from scann_serving.export.testing import make_tiny_version, tiny_spec\n"
    "make_tiny_version(sys.argv[1], model_name='atomic', spec=tiny_spec(seed=2))\n"
)
#: Points of the write to kill at: the staging directory holds ... when the kill comes.
PHASES = {
    "staging created": Path(),
    "variables written": Path("variables") / "variables.index",
    "assets.extra written": Path("assets.extra"),
}


@dataclass(frozen=True)
class Kill:
    """One exporter killed mid-write."""

    phase: str
    delay: float
    staging_left: bool
    numeric_after: int


def _start_exporter(base: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(base)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: SIGKILL takes any child with it
    )


def _kill_mid_write(base: Path, phase: str, delay: float = 0.0) -> Kill:
    """Runs an exporter and SIGKILLs it once its staging dir holds `PHASES[phase]`."""
    before = latest_version(base)
    exporter = _start_exporter(base)
    prefix = f".staging-{exporter.pid}-"
    try:
        deadline = time.monotonic() + 180
        while True:
            if exporter.poll() is not None:
                raise AssertionError(
                    f"exporter ended before {phase}: {exporter.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
                )
            staging = [p for p in base.iterdir() if p.name.startswith(prefix)]
            if staging and (staging[0] / PHASES[phase]).exists():
                break
            assert time.monotonic() < deadline, f"exporter never reached {phase}"
            time.sleep(0.002)
        time.sleep(delay)
        os.killpg(exporter.pid, signal.SIGKILL)
    finally:
        if exporter.poll() is None:
            os.killpg(exporter.pid, signal.SIGKILL)
        exporter.wait()
    assert exporter.returncode == -signal.SIGKILL
    left = any(p.name.startswith(prefix) for p in base.iterdir())
    return Kill(phase, delay, left, latest_version(base) - before)


@dataclass(frozen=True)
class LoadAttempts:
    """Everything that would show the server tried to load a version of MODEL."""

    versions: tuple[int, ...]  # in GetModelStatus
    load_events: float  # scann_serving_model_loads_total{model=MODEL}, any result
    log_lines: int  # "loading model MODEL ..." in the server's log


def _load_attempts(shared: SharedServer) -> LoadAttempts:
    text = metrics_text(shared.rest_url)
    return LoadAttempts(
        tuple(sorted(model_status(shared.channel, MODEL))),
        metric(text, "scann_serving_model_loads_total", model=MODEL),
        shared.process.logs.count(f"loading model {MODEL} "),
    )


def _complete(version_dir: Path) -> bool:
    return all(
        (version_dir / part).is_file()
        for part in (
            "saved_model.pb",
            "variables/variables.index",
            "assets.extra/scann_manifest.json",
        )
    )


def _check_nothing_loaded(shared: SharedServer, kills: list[Kill], before: LoadAttempts) -> None:
    """Mid-write kills publish nothing; the server only ever loads complete versions."""
    time.sleep(2.5 * POLL_SECONDS)  # at least two polls of the base path
    mid_write = [k for k in kills if k.staging_left]
    assert mid_write, f"no kill landed mid-write: {kills}"
    for kill in mid_write:
        assert kill.numeric_after == 0, f"a numeric version appeared after {kill}"
    late = [k for k in kills if not k.staging_left]
    if not late:
        assert _load_attempts(shared) == before, "the server tried to load something"
        return
    # Some exporters had already renamed when the kill came: their versions are complete,
    # the newest one gets loaded, and nothing else is ever attempted.
    base = shared.bases[MODEL]
    numeric = {int(p.name): p for p in base.iterdir() if p.name.isdigit()}
    assert all(k.numeric_after == 1 for k in late), late
    assert all(_complete(path) for path in numeric.values()), "an incomplete numeric version"
    newest = max(numeric)
    wait_until(
        lambda: (
            model_status(shared.channel, MODEL).get(newest) is not None
            and model_status(shared.channel, MODEL)[newest].state == "AVAILABLE"
        ),
        60,
        0.1,
        f"{MODEL} version {newest} (published before its exporter was killed) to load",
    )
    assert set(model_status(shared.channel, MODEL)) <= set(numeric)
    failures_now = metric(
        metrics_text(shared.rest_url),
        "scann_serving_model_loads_total",
        model=MODEL,
        result="failure",
    )
    assert failures_now == 0, "the server failed to load a version of the killed exporters"


def _rerun_publishes(shared: SharedServer) -> int:
    from scann_serving.export.testing import make_tiny_version, tiny_spec

    base = shared.bases[MODEL]
    expected = latest_version(base) + 1
    path = make_tiny_version(base, model_name=MODEL, spec=tiny_spec(seed=2))
    assert path == base / str(expected)
    leftovers = [p.name for p in base.iterdir() if p.name.startswith(".staging-")]
    assert not leftovers, f"the rerun left the dead exporters' staging dirs: {leftovers}"
    wait_until(
        lambda: (
            model_status(shared.channel, MODEL).get(expected) is not None
            and model_status(shared.channel, MODEL)[expected].state == "AVAILABLE"
        ),
        60,
        0.1,
        f"{MODEL} version {expected} to become AVAILABLE",
    )
    with Load(shared.target, MODEL, 2, ["1", "2"]) as load:
        load.wait_for_calls(ok=4, timeout=60)
    calls = load.stop()
    assert calls and not failures(calls)
    assert {c.version for c in calls} == {expected}
    return expected


def test_exporter_killed_mid_write_publishes_nothing(shared_server: SharedServer) -> None:
    """Fast variant: one exporter killed while writing its variables; then a rerun."""
    before = _load_attempts(shared_server)
    kill = _kill_mid_write(shared_server.bases[MODEL], "variables written")
    _check_nothing_loaded(shared_server, [kill], before)
    version = _rerun_publishes(shared_server)
    print(f"killed {kill}; rerun published version {version}")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_exporter_killed_mid_write_soak(shared_server: SharedServer) -> None:
    """Soak variant: 12 exporters killed at every phase with random delays; then a rerun."""
    base = shared_server.bases[MODEL]
    before = _load_attempts(shared_server)
    rng = random.Random(6)
    kills = [
        _kill_mid_write(base, phase, rng.uniform(0.0, 0.05)) for phase in PHASES for _ in range(4)
    ]
    _check_nothing_loaded(shared_server, kills, before)
    version = _rerun_publishes(shared_server)
    mid = sum(k.staging_left for k in kills)
    print(f"{mid} of {len(kills)} kills landed mid-write; rerun published v{version}")
