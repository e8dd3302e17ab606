"""Promise 8 — memory: load/unload cycles do not leak.

A scann-serve of its own serves a model whose base path gets a new version each cycle
(published atomically); the latest-version policy loads and warms it, then unloads the
previous one. After each cycle (new version AVAILABLE, old one END, a few calls answered)
the server's resident memory is read with psutil. Promised: after the last cycle it is at
most 10% above what it was after the first. Run on each backend (`backend` fixture): each
loads, warms and frees a version its own way (a TensorFlow graph and session, or a ScaNN
searcher and numpy tables).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psutil
import pytest
from _rel_support import assert_backend, model_status, prediction_stub, publish_copy, wait_until
from serve_helpers import ServerProcess, predict_request

MODEL = "retrieval"
MAX_GROWTH = 0.10


def _cycle(server: ServerProcess, channel: object, base: Path, version: int) -> None:
    publish_copy(base / "1", base, version)

    def swapped() -> bool:
        status = model_status(channel, MODEL)
        new, old = status.get(version), status.get(version - 1)
        return bool(new and new.state == "AVAILABLE" and old and old.state == "END")

    wait_until(swapped, 120, 0.1, f"version {version} to replace {version - 1}")
    stub = prediction_stub(channel)
    for _ in range(20):
        reply = stub.Predict(predict_request(MODEL, ["1", "2", "3"]), timeout=10)
        assert reply.model_spec.version.value == version


def _memory_cycles(tiny_model_base: Path, tmp_path: Path, backend: str, cycles: int) -> list[int]:
    """RSS in bytes after each of `cycles` load/unload cycles on `backend`."""
    base = tmp_path / MODEL
    shutil.copytree(tiny_model_base, base)
    server = ServerProcess(
        "--file_system_poll_wait_seconds=1",
        f"--backend={backend}",
        model_name=MODEL,
        model_base_path=base,
        rest=False,
    ).start()
    assert server.process is not None
    rss = []
    try:
        process = psutil.Process(server.process.pid)
        with server.channel() as channel:
            for version in range(2, cycles + 2):
                _cycle(server, channel, base, version)
                time.sleep(0.2)
                rss.append(process.memory_info().rss)
            assert_backend(channel, MODEL, backend)
        assert server.process.poll() is None, server.logs[-2000:]
    finally:
        server.stop()
    return rss


def _check(rss: list[int]) -> str:
    first, last = rss[0], rss[-1]
    figures = ", ".join(f"{r / 2**20:.0f}" for r in rss)
    growth = last / first - 1
    assert growth <= MAX_GROWTH, (
        f"RSS grew {growth:.1%} from the first cycle to the last (MiB per cycle: {figures})"
    )
    return f"{len(rss)} cycles: RSS {first / 2**20:.0f} -> {last / 2**20:.0f} MiB ({growth:+.1%}); per cycle: {figures}"


def test_memory_after_load_unload_cycles(
    tiny_model_base: Path, tmp_path: Path, backend: str
) -> None:
    """Fast variant: 5 load/unload cycles."""
    print(_check(_memory_cycles(tiny_model_base, tmp_path, backend, cycles=5)))


@pytest.mark.slow
def test_memory_after_load_unload_cycles_soak(
    tiny_model_base: Path, tmp_path: Path, backend: str
) -> None:
    """Soak variant (issue 6): 20 load/unload cycles."""
    print(_check(_memory_cycles(tiny_model_base, tmp_path, backend, cycles=20)))
