"""Served measurements: every configuration of scann-serve, per backend, and the no-op floor.

A configuration is a backend (`--backends`) and a mode (`MODES`: plain, batching, batching
on the asyncio server, and the asyncio server without batching, where a native server
answers a few keys on its event loop). Each runs in its own `scann-serve` subprocess, whose
start-to-SERVING time and resident memory (from /proc) are recorded beside its rows. Each
row is measured in isolation (`_bench_status.measure`): a failure becomes a row marked
failed with its reason, and the results file is saved after every row. Rows (keys in the
JSON, `c_` for h2load's):

* `grpc_noop_single`, `grpc_noop_16`, `c_noop_single`, `c_noop_16`: grpc.health.v1 Check,
  the floor of any gRPC call on the same server;
* `grpc_single`, `rest_single`, `c_single`: one client's Predict latency (1 key);
* `grpc_{1,4,16}`, `rest_{1,4,16}`, `c_{1,4,16}`: throughput at that many clients;
* `grpc_64x16`, `c_64x16`: requests of `QUERIES_PER_REQUEST` keys from 16 clients, in
  rows (queries) per second, against raw ScaNN's `search_batched` at 64 per call.

`c_noop_single`, `c_single`, `c_noop_16` and `c_16`, the rows issue 13's ratios divide,
run last, in `--h2load-rounds` interleaved rounds (`_bench_status.measure_rounds`); each
keeps its median round and lists every round under `rounds`.

With pinning (`cpu_split`, on by default with 2 or more CPUs), once a server is SERVING its
threads are moved to every CPU but the last and the clients (h2load, the Python load
processes, this process) to the last one, so load generator and server stop taking turns
on the same cores: the nearest this one machine comes to a client on another machine. The
start-to-SERVING time is taken before, unpinned.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from _bench_clients import (
    CONCURRENCY,
    external_load,
    grpc_latency,
    grpc_noop_latency,
    grpc_request,
    h2load_run,
    on_server,
    python_load,
    rest_latency,
    rest_throughput,
)
from _bench_data import log
from _bench_h2load import h2load_path
from _bench_h2load import run as h2load
from _bench_load import HEALTH_CHECK, PREDICT
from _bench_status import counted, measure, measure_rounds

#: Served configurations: name -> (--enable_batching, --grpc_server_mode).
MODES = {
    "plain": (False, "threads"),
    "batching": (True, "threads"),
    "batching_asyncio": (True, "asyncio"),
    "asyncio": (False, "asyncio"),
}
#: Keys per request in the many-queries rows (the batcher's max_batch_size, so one request
#: is one batch; raw ScaNN is measured at the same size).
QUERIES_PER_REQUEST = 64
#: The backend every scann-serve has (one without --backend serves only this one).
DEFAULT_BACKEND = "tensorflow"


def has_backend_flag() -> bool:
    """Whether this scann-serve's --help lists --backend (a server from before the native
    backend has no such flag, and serves only TensorFlow)."""
    from serve_helpers import TF_ENV, scann_serve_command

    done = subprocess.run(
        [*scann_serve_command(), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **TF_ENV},
        check=False,
    )
    return "--backend" in done.stdout


def default_backends(backend_flag: bool) -> list[str]:
    """tensorflow, plus native when the server has --backend."""
    return [DEFAULT_BACKEND, "native"] if backend_flag else [DEFAULT_BACKEND]


def backend_flags(backend: str, has_backend_flag: bool) -> list[str]:
    """`--backend=<backend>`; nothing for tensorflow on a server without the flag (it
    serves only that backend). Any other backend always gets the flag, so a server that
    lacks it fails that configuration at start, with its own message."""
    if backend == DEFAULT_BACKEND and not has_backend_flag:
        return []
    return [f"--backend={backend}"]


def memory_mib(pid: int) -> dict[str, float | None]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MiB (Linux)."""
    out: dict[str, float | None] = {"rss_mib": None, "peak_rss_mib": None}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            key = "rss_mib" if name == "VmRSS" else "peak_rss_mib"
            out[key] = int(value.split()[0]) / 1024
    return out


def batching_flags(workdir: Path, timeout_micros: int = 0, threads: int = 1) -> list[str]:
    """Flags for --enable_batching with a BatchingParameters file written in `workdir`."""
    params = workdir / "batching.txt"
    params.write_text(
        f"max_batch_size {{ value: 64 }}\nbatch_timeout_micros {{ value: {timeout_micros} }}\n"
        f"num_batch_threads {{ value: {threads} }}\nmax_enqueued_batches {{ value: 100 }}\n"
    )
    return ["--enable_batching", f"--batching_parameters_file={params}", "--grpc_max_threads=32"]


def server_flags(args: Any, backend: str, mode: str, workdir: Path) -> list[str]:
    """scann-serve's flags for one configuration (the model flags come from ServerProcess)."""
    batching, server_mode = MODES[mode]
    flags = ["--file_system_poll_wait_seconds=0", f"--grpc_server_mode={server_mode}"]
    flags += backend_flags(backend, args.server_has_backend_flag)
    flags += args.server_flag
    if batching:
        flags += batching_flags(workdir, args.batch_timeout_micros, args.num_batch_threads)
    return flags


def cpu_split(pin: bool | None) -> dict[str, list[int]] | None:
    """The CPUs of the server and of the clients when pinning (`--pin`/`--no-pin`; None
    pins when this process may run on 2 or more CPUs): the clients get the last CPU, the
    server the others. None when not pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if pin is False or (pin is None and len(cpus) < 2):
        return None
    if len(cpus) < 2:
        raise SystemExit(f"--pin needs 2 or more CPUs, this process may use {cpus}; use --no-pin")
    return {"server_cpus": cpus[:-1], "client_cpus": cpus[-1:]}


def pin_threads(pid: int, cpus: list[int]) -> None:
    """Every thread of process `pid` onto `cpus` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(int(task.name), cpus)


@contextlib.contextmanager
def pinned(server_pid: int, split: dict[str, list[int]] | None) -> Iterator[None]:
    """The server's threads on `split`'s server CPUs and this process's (and so every
    client it starts) on the client CPUs, until the block ends; nothing when `split` is
    None. This process may use all of its CPUs again afterwards."""
    if split is None:
        yield
        return
    own = sorted(os.sched_getaffinity(0))
    pin_threads(server_pid, split["server_cpus"])
    pin_threads(os.getpid(), split["client_cpus"])
    try:
        yield
    finally:
        pin_threads(os.getpid(), own)


def served(
    base: Path,
    num_queries: int,
    args: Any,
    config: tuple[str, str],
    workdir: Path,
    out: dict[str, Any],
    save: Callable[[], None],
) -> None:
    """Every served measurement against one scann-serve subprocess in `config` (backend,
    mode), stored in `out` row by row (see the module docstring). Raises only when the
    server does not start; the caller records that as the configuration's failure."""
    from serve_helpers import ServerProcess

    backend, mode = config
    flags = server_flags(args, backend, mode, workdir)
    log(f"starting scann-serve ({backend}, {mode}) {flags}")
    server = ServerProcess(*flags, model_name="retrieval", model_base_path=base)
    started = time.monotonic()
    server.start()  # kills the process itself when it never becomes SERVING
    assert server.process is not None
    try:
        out["server"] = {"flags": flags, "start_to_serving_s": time.monotonic() - started}
        out["server"].update(memory_mib(server.process.pid))
        save()
        with pinned(server.process.pid, getattr(args, "cpu_split", None)):
            _rows(server, num_queries, args, out, save)
        out["server"]["after_load"] = memory_mib(server.process.pid)
        save()
    finally:
        server.stop()


def _rows(server: Any, num_queries: int, args: Any, out: dict, save: Callable[[], None]) -> None:
    target, n, rest_port = server.target, args.latency_samples, server.rest_port or 0
    payloads = [grpc_request(str(i)).SerializeToString() for i in range(num_queries)]
    many = [  # requests of QUERIES_PER_REQUEST consecutive keys, a few different ones
        grpc_request(
            [str((j + i) % num_queries) for i in range(QUERIES_PER_REQUEST)]
        ).SerializeToString()
        for j in range(0, num_queries, max(1, num_queries // 8))
    ]
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("grpc_noop_single", lambda: grpc_noop_latency(target, n)),
        ("grpc_noop_16", lambda: python_load(server, HEALTH_CHECK, [b""], 16, args)),
        ("grpc_single", lambda: grpc_latency(target, num_queries, n)),
        ("rest_single", lambda: rest_latency(rest_port, num_queries, n)),
    ]
    for c in CONCURRENCY:
        rows.append((f"grpc_{c}", partial(python_load, server, PREDICT, payloads, c, args)))
        rest = partial(rest_throughput, rest_port, num_queries, c, args.duration)
        rows.append((f"rest_{c}", partial(on_server, server, rest)))
    rows.append(
        ("grpc_64x16", lambda: python_load(server, PREDICT, many, 16, args, QUERIES_PER_REQUEST))
    )
    # The h2load rows the targets divide (a Predict by the no-op on this server) are taken
    # in interleaved rounds, so the machine's load drifting during the run reaches both.
    paired: list[tuple[str, Callable[[], Any]]] = []
    if h2load_path():
        paired = [
            ("c_noop_single", lambda: h2load_run(server, HEALTH_CHECK, b"", 1, args, timed=False)),
            ("c_single", lambda: h2load_run(server, PREDICT, payloads[1], 1, args, timed=False)),
            ("c_noop_16", lambda: h2load_run(server, HEALTH_CHECK, b"", 16, args)),
            ("c_16", lambda: h2load_run(server, PREDICT, payloads[1], 16, args)),
        ]
        rows += [
            (f"c_{c}", partial(h2load_run, server, PREDICT, payloads[1], c, args))
            for c in CONCURRENCY
            if c != 16
        ]
        rows.append(
            (
                "c_64x16",
                lambda: h2load_run(server, PREDICT, many[0], 16, args, rows=QUERIES_PER_REQUEST),
            )
        )
    else:
        log("h2load not found (apt-get install nghttp2-client): skipping native-client rows")
    for key, run in rows:
        result = measure(out, key, run, save)
        if result is not None:
            log(f"  {key}: {_brief(result)}")
    if paired:
        rounds = max(1, getattr(args, "h2load_rounds", 1))
        measure_rounds(out, paired, rounds, save, _progress)


def _progress(key: str, result: dict) -> None:
    log(f"  {key}: {_brief(result)}")


def _brief(result: dict) -> str:
    """A progress line's summary of one row."""
    parts = []
    if "qps" in result:
        parts.append(f"{result['qps']:.0f} q/s")
    if "rows_per_s" in result:
        parts.append(f"{result['rows_per_s']:.0f} rows/s")
    if "p50_ms" in result:
        parts.append(f"p50 {result['p50_ms']:.3f} ms")
    if result.get("server_cpu_us_per_call") is not None:
        parts.append(f"server {result['server_cpu_us_per_call']:.0f} us CPU/call")
    if result.get("mean_batch_size"):
        parts.append(f"mean batch {result['mean_batch_size']:.1f}")
    if "real_errors" in result:
        parts.append(
            f"{result['real_errors']} real errors, {result['end_of_run_cancelled']} "
            f"cancelled at the end {result['statuses']}"
        )
    return ", ".join(parts)


def external(
    target: str, model: str, num_queries: int, args: Any, out: dict, save: Callable[[], None]
) -> None:
    """Another server speaking TF Serving's API (e.g. the TF Serving + ScaNN image) serving
    the same exported version as `model`: the same latency and throughput measurements into
    `out`, row by row, without server CPU or batch sizes (its process and metrics are not
    ours to read)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    log(f"measuring the external server {target} (model {model!r})")
    with grpc.insecure_channel(target) as channel:  # one checked call: right model, k rows
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            grpc_request("1", model), timeout=30
        )
    if not reply.outputs["identifiers"].string_val:
        raise RuntimeError(f"{target} answered Predict without identifiers: {reply}")
    payloads = [grpc_request(str(i), model).SerializeToString() for i in range(num_queries)]
    out["target"] = target
    n, seconds = args.latency_samples, args.duration
    measure(out, "grpc_single", lambda: grpc_latency(target, num_queries, n, model), save)
    for c in CONCURRENCY:
        measure(out, f"grpc_{c}", partial(external_load, target, payloads, c, args), save)
    if h2load_path():
        measure(out, "c_single", lambda: h2load(target, PREDICT, payloads[1], 1, requests=n), save)
        for c in CONCURRENCY:
            run = partial(h2load, target, PREDICT, payloads[1], c, seconds=seconds)
            measure(out, f"c_{c}", partial(counted, None, run), save)
