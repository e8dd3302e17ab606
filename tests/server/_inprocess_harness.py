"""The real Metrics, ModelManager, Batcher and ServingCore wired around a FakeLoader.

    with Harness(tmp_path) as h:
        publish_version(h.base, 1)
        core = h.core()                       # manager polled once: version 1 is AVAILABLE
        future = h.in_thread(core.predict, call(queries("a")))

`close()` (the context exit) opens every gate, stops the batchers and managers and joins
the caller threads, so a failing test leaves nothing running. Also: `ShiftedClock` to
move a module's clock forward, `wait_until` to poll with a deadline, `metric_value`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _fake_servable import WAIT_SECONDS, FakeLoader
from scann_serving.server._batching import Batcher
from scann_serving.server._config import BatchingConfig, ModelsConfig, single_model_config
from scann_serving.server._core import ModelRef, PredictCall, ServingCore
from scann_serving.server._manager import ModelManager
from scann_serving.server._metrics import Metrics

MODEL = "fake"


class Harness:
    """Builds the serving objects over `tmp_path / MODEL` and cleans up after them."""

    def __init__(self, tmp_path: Path) -> None:
        self.base = tmp_path / MODEL
        self.base.mkdir()
        self.loader = FakeLoader()
        self.metrics = Metrics()
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="test-caller")
        self._batchers: list[Batcher] = []
        self._managers: list[ModelManager] = []

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def config(self, model_config: Any = None, **fields: Any) -> ModelsConfig:
        """A ServerConfig serving MODEL from `base` (or `model_config`), retries immediate."""
        fields.setdefault("load_retry_interval_micros", 0)
        return ModelsConfig(
            model_config=model_config or single_model_config(MODEL, str(self.base)), **fields
        )

    def manager(self, model_config: Any = None, **fields: Any) -> ModelManager:
        """A ModelManager over the FakeLoader (not polled yet, not started)."""
        manager = ModelManager(
            self.config(model_config, **fields),
            self.metrics,
            loader=self.loader,
        )
        self._managers.append(manager)
        return manager

    def batcher(self, **fields: Any) -> Batcher:
        """A real Batcher (one worker unless `num_batch_threads` is given)."""
        fields.setdefault("num_batch_threads", 1)
        batcher = Batcher(BatchingConfig(**fields), self.metrics)
        self._batchers.append(batcher)
        return batcher

    def core(self, batcher: Batcher | None = None, **fields: Any) -> ServingCore:
        """A ServingCore whose manager has polled `base` once."""
        manager = self.manager(**fields)
        manager.poll_once()
        return ServingCore(manager, self.metrics, batcher)

    def in_thread(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Runs `fn(*args)` on a caller thread of `pool` (joined at close)."""
        return self.pool.submit(fn, *args)

    def close(self) -> None:
        """Frees held calls and loads, then stops batchers and managers and joins callers."""
        self.loader.run_gate.open()
        self.loader.load_gate.open()
        for batcher in self._batchers:
            batcher.stop()
        for manager in self._managers:
            manager.stop()
        self.pool.shutdown(wait=True)


def call(
    inputs: Any, *, signature: str = "", deadline: float | None = None, **ref: Any
) -> PredictCall:
    """A PredictCall on MODEL (`ref`: version= or label=)."""
    return PredictCall(ModelRef(MODEL, **ref), signature, inputs, deadline=deadline)


class ShiftedClock:
    """Stands in for a module's `time`: the real clock plus an offset a test advances."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        """Moves this clock forward (never back)."""
        self.offset += seconds

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def perf_counter(self) -> float:
        return time.perf_counter()


def wait_until(predicate: Callable[[], Any], what: str) -> Any:
    """Polls `predicate` until it is truthy; AssertionError naming `what` after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_SECONDS}s waiting for {what}")
        time.sleep(0.005)


def metric_value(metrics: Metrics, name: str, **labels: str) -> float:
    """The sum of scann_serving_<name> samples whose labels include `labels` (0 if none)."""
    pattern = re.compile(
        rf"^scann_serving_{re.escape(name)}(\{{(?P<labels>.*)\}})? (?P<value>\S+)$"
    )
    total = 0.0
    for line in metrics.render().splitlines():
        match = pattern.match(line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match["value"])
    return total
