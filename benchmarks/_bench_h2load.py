"""A native load generator for the served path: nghttp2's h2load speaking gRPC framing.

The Python load generator (`_bench_load`) spends 120-190 us of CPU per call on the same
two cores as the server, so part of what it reports is its own cost. h2load is a C HTTP/2
client: it sends the pre-framed gRPC request (5-byte length prefix + PredictRequest bytes,
`content-type: application/grpc`, `te: trailers`) on `clients` connections, one stream
each, and spends a few microseconds per call. That measures the server, as a C++ or Go
caller on another machine would see it.

h2load counts HTTP 200 as success, but gRPC reports errors in the `grpc-status` trailer
of a 200 response, so callers also count the server's own requests by status around a run
(`_bench_status`). A timed run (`-D`) ends by cancelling the calls still in flight
("3222 started, 3206 done"), at most one per connection: `run` reports that bound as
`cancellable_at_end`, so a server that counts them as CANCELLED is not taken for one that
failed. h2load comes from Debian's
`nghttp2-client` package (`apt-get install nghttp2-client`); without it the benchmark
skips these rows and says so.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def h2load_path() -> str | None:
    """The h2load executable, or None when nghttp2-client is not installed."""
    return shutil.which("h2load")


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: flag 0 (uncompressed), big-endian length, bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def _latencies_ms(log_file: Path) -> tuple[np.ndarray, int]:
    """Latencies (ms) of the HTTP 200 responses in h2load's log, and how many were not 200
    (counted as errors by the caller rather than raised, so the run's numbers survive)."""
    rows = [line.split("\t") for line in log_file.read_text().splitlines() if line.strip()]
    ok = [int(row[2]) for row in rows if row[1] == "200"]
    return np.asarray(ok, dtype=np.float64) / 1e3, len(rows) - len(ok)


def request_counts(stdout: str) -> dict[str, int]:
    """h2load's 'requests: N total, N started, N done, N succeeded, N failed, N errored,
    N timeout' summary line as a dict ({} when the line is missing)."""
    for line in stdout.splitlines():
        if line.startswith("requests:"):
            pairs = (part.split() for part in line.split(":", 1)[1].split(","))
            return {name: int(value) for value, name in pairs}
    return {}


def run(
    port: int | str,
    method: str,
    message: bytes,
    clients: int,
    *,
    seconds: float | None = None,
    requests: int | None = None,
    warmup_seconds: float = 0.5,
) -> dict[str, Any]:
    """Closed-loop load from h2load; returns q/s, calls and latency percentiles (ms).

    Args:
        port: The server's gRPC port on 127.0.0.1, or "host:port".
        method: The gRPC path, e.g. "/tensorflow.serving.PredictionService/Predict".
        message: The serialized request message (framed here).
        clients: Concurrent connections, one call in flight on each.
        seconds: Timed run (h2load -D) after `warmup_seconds`; or
        requests: A fixed number of calls (h2load -n), for single-client latency.
    """
    exe = h2load_path()
    if exe is None:
        raise RuntimeError("h2load is not installed (apt-get install nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body, log_file = Path(tmp) / "request.grpc", Path(tmp) / "requests.tsv"
        body.write_bytes(grpc_frame(message))
        command = [exe, "-c", str(clients), "-m", "1", "-d", str(body)]
        command += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        command += [f"--log-file={log_file}"]
        if seconds is not None:
            command += ["-D", f"{round(seconds * 1000)}ms"]
            command += [f"--warm-up-time={round(warmup_seconds * 1000)}ms"]
        else:
            command += ["-n", str(requests or 1000)]
        address = port if isinstance(port, str) else f"127.0.0.1:{port}"
        command.append(f"http://{address}{method}")
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}): {done.stderr or done.stdout}")
        latencies, not_200 = _latencies_ms(log_file)
    if not latencies.size:
        raise RuntimeError(f"h2load completed no call with HTTP 200:\n{done.stdout}")
    elapsed = seconds if seconds is not None else _elapsed_seconds(done.stdout)
    counts = request_counts(done.stdout)
    return {
        "calls": int(latencies.size),
        "qps": latencies.size / elapsed,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "mean_ms": float(latencies.mean()),
        "n": int(latencies.size),
        "http_errors": not_200,
        # What the end of the run may cancel: in a timed run, the call in flight on each
        # connection (h2load's own started/done counts cover the measured window only, so
        # they can show none while the server counts one CANCELLED); otherwise what h2load
        # started and never finished.
        "cancellable_at_end": clients
        if seconds is not None
        else max(0, counts.get("started", 0) - counts.get("done", 0)),
        "h2load_requests": counts,
    }


def _elapsed_seconds(stdout: str) -> float:
    """'finished in 1.27s, ...' from h2load's summary."""
    for line in stdout.splitlines():
        if line.startswith("finished in "):
            value = line.split()[2].rstrip(",")
            scale = 1e-3 if value.endswith("ms") else 1.0
            return float(value.rstrip("ms")) * scale
    raise RuntimeError(f"no 'finished in' line in h2load's output:\n{stdout}")
