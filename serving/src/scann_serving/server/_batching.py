"""Inter-request batching: concurrent requests merged into one ScaNN search.

The gRPC server's handler threads block on a Future while `num_batch_threads` workers run
the merged calls (the search releases the GIL). Requests for the same servable, signature,
scalar inputs (e.g. `k`) and trailing shapes queue together; a worker takes up to
`max_batch_size` rows once the batch is full or its oldest request has waited
`batch_timeout_micros` (0: take what is queued now; while one batch is searched the next
fills by itself). At most `max_enqueued_batches x max_batch_size` rows wait; beyond that a
request is refused with UNAVAILABLE, as TF Serving's batch scheduler does. Requests whose
deadline passed while queued are answered DEADLINE_EXCEEDED and not computed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scann_serving.server._config import BatchingConfig
from scann_serving.server._errors import DeadlineExceeded, InvalidArgument, Unavailable
from scann_serving.server._metrics import Metrics
from scann_serving.server._servable import Servable, Signature


@dataclass
class _Task:
    servable: Servable
    signature: Signature
    inputs: dict[str, np.ndarray]
    rows: int
    output_filter: list[str] | None
    deadline: float | None
    future: Future[dict[str, np.ndarray]] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


def _batch_key(task: _Task) -> tuple[Any, ...]:
    parts: list[Any] = [id(task.servable), task.signature.name, tuple(task.output_filter or ())]
    for key in sorted(task.inputs):
        value = task.inputs[key]
        parts.append((key, value.shape[1:], value.item() if value.ndim == 0 else None))
    return tuple(parts)


class Batcher:
    """Merges concurrent predict calls; thread-safe; `submit` returns a Future of outputs."""

    def __init__(self, config: BatchingConfig, metrics: Metrics) -> None:
        self._config = config
        self._metrics = metrics
        self._cond = threading.Condition()
        self._queues: OrderedDict[tuple[Any, ...], deque[_Task]] = OrderedDict()
        self._pending = 0
        self._stopped = False
        self._limit = config.max_enqueued_batches * config.max_batch_size
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(config.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        servable: Servable,
        signature: Signature,
        inputs: dict[str, np.ndarray],
        rows: int,
        output_filter: list[str] | None,
        deadline: float | None,
    ) -> Future[dict[str, np.ndarray]]:
        """Queues one validated request; raises Unavailable when the queue is full."""
        if rows > self._config.max_batch_size:
            raise InvalidArgument(
                f"Task size {rows} is larger than maximum input batch size "
                f"{self._config.max_batch_size}; split the request"
            )
        task = _Task(servable, signature, inputs, max(rows, 1), output_filter, deadline)
        with self._cond:
            if self._stopped or self._pending + task.rows > self._limit:
                self._metrics.queue_rejected()
                raise Unavailable(
                    "The batch scheduling queue to which this request was sent is full; retry later"
                )
            self._queues.setdefault(_batch_key(task), deque()).append(task)
            self._pending += task.rows
            self._cond.notify()
        return task.future

    def stop(self) -> None:
        """Stops the workers after the queued batches are done."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _take(self) -> list[_Task] | None:
        with self._cond:
            while True:
                now = time.monotonic()
                wait: float | None = None
                for key, queue in self._queues.items():
                    rows = sum(t.rows for t in queue)
                    ready_at = queue[0].enqueued + self._config.batch_timeout_micros / 1e6
                    if rows >= self._config.max_batch_size or ready_at <= now or self._stopped:
                        return self._pop(key, queue)
                    wait = ready_at - now if wait is None else min(wait, ready_at - now)
                if self._stopped:
                    return None
                self._cond.wait(wait)

    def _pop(self, key: tuple[Any, ...], queue: deque[_Task]) -> list[_Task]:
        batch: list[_Task] = []
        rows = 0
        while queue and (not batch or rows + queue[0].rows <= self._config.max_batch_size):
            task = queue.popleft()
            batch.append(task)
            rows += task.rows
        if not queue:
            del self._queues[key]
        else:
            self._queues.move_to_end(key)  # fairness between keys
        self._pending -= rows
        return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            now = time.monotonic()
            live = []
            for task in batch:
                if not task.future.set_running_or_notify_cancel():
                    continue
                if task.deadline is not None and now > task.deadline:
                    task.future.set_exception(
                        DeadlineExceeded("deadline expired while queued for batching; not computed")
                    )
                    continue
                live.append(task)
            if live:
                self._run(live)

    def _run(self, batch: list[_Task]) -> None:
        first = batch[0]
        try:
            if len(batch) == 1:
                merged = first.inputs
            else:
                merged = {
                    key: value
                    if value.ndim == 0
                    else np.concatenate([t.inputs[key] for t in batch])
                    for key, value in first.inputs.items()
                }
            self._metrics.batch(sum(t.rows for t in batch))
            outputs = first.servable.run(first.signature, merged, first.output_filter)
        except Exception as exc:
            for task in batch:
                task.future.set_exception(exc)
            return
        offset = 0
        for task in batch:
            end = offset + task.rows
            task.future.set_result({k: v[offset:end] for k, v in outputs.items()})
            offset = end
