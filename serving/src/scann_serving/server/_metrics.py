"""Prometheus metrics, always on (no config file needed), in the text exposition format.

Request counts and latency histograms by model, version, signature, API and status; model
load/unload events (successes and failures, with load time); batch sizes and queue refusals.
A tiny thread-safe registry instead of a dependency: these few series are all we need.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_PREFIX = "scann_serving"

Labels = tuple[tuple[str, str], ...]


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value


def _fmt(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = [*labels, *extra]
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The server's metric registry (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._histograms: dict[str, dict[Labels, _Histogram]] = defaultdict(dict)
        self._gauges: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}
        #: Request label values -> (their label tuple, latency histogram), so a request
        #: does not build five label pairs and look the series up twice.
        self._request_series: dict[tuple[str, ...], tuple[Labels, _Histogram]] = {}
        self._describe(
            "requests_total", "counter", "Requests by model, version, signature, api, status."
        )
        self._describe("request_latency_seconds", "histogram", "Request latency in seconds.")
        self._describe("model_loads_total", "counter", "Model version loads by result.")
        self._describe("model_load_seconds", "histogram", "Time to load and warm a version.")
        self._describe("model_unloads_total", "counter", "Model versions unloaded.")
        self._describe(
            "model_backend", "gauge", "1 for each AVAILABLE version, labelled by its backend."
        )
        self._describe("batch_size", "histogram", "Requests merged into one model call.")
        self._describe("batch_queue_rejections_total", "counter", "Requests refused: queue full.")

    def _describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def _inc(self, name: str, labels: Labels, value: float = 1.0) -> None:
        series = self._counters[name]
        series[labels] = series.get(labels, 0.0) + value

    def _observe(self, name: str, labels: Labels, value: float, buckets: tuple[float, ...]) -> None:
        series = self._histograms[name]
        if labels not in series:
            series[labels] = _Histogram(buckets)
        series[labels].observe(value)

    def request(
        self, *, model: str, version: str, signature: str, api: str, status: str, seconds: float
    ) -> None:
        """Counts one finished request and records its latency."""
        key = (model, version, signature, api, status)
        with self._lock:
            series = self._request_series.get(key)
            if series is None:  # first request with these labels: build them once
                labels: Labels = (
                    ("model", model),
                    ("version", version),
                    ("signature", signature),
                    ("api", api),
                    ("status", status),
                )
                self._counters["requests_total"].setdefault(labels, 0.0)
                histogram = self._histograms["request_latency_seconds"].setdefault(
                    labels, _Histogram(LATENCY_BUCKETS)
                )
                series = self._request_series[key] = (labels, histogram)
            # requests_total is the histogram's count: `render` writes it from there.
            series[1].observe(seconds)

    def loaded(
        self, model: str, version: int, result: str, seconds: float, backend: str = ""
    ) -> None:
        """Counts a load attempt ('success' or 'failure'); a success sets the backend gauge."""
        labels = (("model", model), ("version", str(version)), ("result", result))
        with self._lock:
            self._inc("model_loads_total", labels)
            if result == "success":
                self._observe("model_load_seconds", labels[:2], seconds, LATENCY_BUCKETS)
                if backend:
                    self._gauges["model_backend"][(*labels[:2], ("backend", backend))] = 1.0

    def unloaded(self, model: str, version: int) -> None:
        """Counts an unload (and drops the version's backend gauge)."""
        key = (("model", model), ("version", str(version)))
        with self._lock:
            self._inc("model_unloads_total", key)
            gauges = self._gauges["model_backend"]
            for labels in [labels for labels in gauges if labels[:2] == key]:
                del gauges[labels]

    def batch(self, size: int) -> None:
        """Records the size of one merged model call."""
        with self._lock:
            self._observe("batch_size", (), float(size), BATCH_BUCKETS)

    def queue_rejected(self) -> None:
        """Counts a request refused because the batching queue was full."""
        with self._lock:
            self._inc("batch_queue_rejections_total", ())

    def render(self) -> str:
        """The Prometheus text exposition of every series."""
        lines: list[str] = []
        with self._lock:
            requests = self._counters["requests_total"]
            for labels, histogram in self._request_series.values():
                requests[labels] = float(sum(histogram.counts))
            for name, (kind, text) in self._help.items():
                full = f"{_PREFIX}_{name}"
                lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
                if kind in ("counter", "gauge"):
                    values = self._counters if kind == "counter" else self._gauges
                    for labels, value in values.get(name, {}).items():
                        lines.append(f"{full}{_fmt(labels)} {value:g}")
                else:
                    for labels, hist in self._histograms.get(name, {}).items():
                        lines += _render_histogram(full, labels, hist)
        return "\n".join(lines) + "\n"


def _render_histogram(full: str, labels: Labels, hist: _Histogram) -> list[str]:
    lines, running = [], 0
    for bound, count in zip([*hist.buckets, float("inf")], hist.counts, strict=True):
        running += count
        le = "+Inf" if bound == float("inf") else f"{bound:g}"
        lines.append(f"{full}_bucket{_fmt(labels, (('le', le),))} {running}")
    lines.append(f"{full}_sum{_fmt(labels)} {hist.total:g}")
    lines.append(f"{full}_count{_fmt(labels)} {running}")
    return lines
