"""Wiring and lifecycle: build the core, start gRPC + REST, follow readiness, drain on SIGTERM.

SIGTERM (or SIGINT): health turns NOT_SERVING at once, new calls are refused with
UNAVAILABLE, calls in flight finish within --drain_grace_seconds, then the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from scann_serving.server._batching import Batcher
from scann_serving.server._config import ServerConfig, TensorFlowConfig, load_model_server_config
from scann_serving.server._core import DRAIN_ADMIT_SECONDS, ServingCore
from scann_serving.server._grpc import build_server
from scann_serving.server._manager import ModelManager
from scann_serving.server._metrics import Metrics
from scann_serving.server._rest import RestServer
from scann_serving.server._wire import SERVICE_NAMES

log = logging.getLogger("scann_serving.server")
HEALTH_POLL_SECONDS = 0.05


def _follow_health(core: ServingCore, health: Any, stop: threading.Event) -> None:
    from grpc_health.v1 import health_pb2

    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    current = None
    while not stop.is_set():
        wanted = serving if core.ready() else not_serving
        if wanted != current:
            for name in ("", *SERVICE_NAMES):
                health.set(name, wanted)
            log.info("health: %s", "SERVING" if wanted == serving else "NOT_SERVING")
            current = wanted
        stop.wait(HEALTH_POLL_SECONDS)


def _follow_config_file(config: ServerConfig, core: ServingCore, stop: threading.Event) -> None:
    path, wait = config.model_config_file, config.model_config_file_poll_wait_seconds
    if not path or wait <= 0:
        return
    last = Path(path).read_bytes()
    while not stop.wait(wait):
        try:
            text = Path(path).read_bytes()
            if text != last:
                core.reload(load_model_server_config(path))
                last = text
                log.info("applied the changed --model_config_file %s", path)
        except Exception as exc:  # a bad edit must not take the server down
            log.error("ignoring --model_config_file %s: %s", path, exc)


def _configure_tensorflow(config: TensorFlowConfig) -> None:
    """TensorFlow's thread pools, before any version loads (--tensorflow_*_parallelism);
    then its device probe, without the no-GPU ERROR line (client._quiet_tf)."""
    import tensorflow as tf
    from scann_serving.client._quiet_tf import start_tensorflow

    intra = config.intra_op_parallelism or config.session_parallelism
    inter = config.inter_op_parallelism or config.session_parallelism
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    start_tensorflow()


def serve(config: ServerConfig) -> int:
    """Runs the server until SIGTERM/SIGINT (call from the main thread); returns the exit status."""
    from scann_serving.server._backend import backend_loader

    metrics = Metrics()
    # TensorFlow is configured (and imported) only when a version first needs it.
    loader = backend_loader(
        config.models.backend,
        config.models.max_request_batch_size,
        on_tensorflow=lambda: _configure_tensorflow(config.tensorflow),
    )
    manager = ModelManager(config.models, metrics, loader=loader)
    batcher = Batcher(config.batching, metrics) if config.batching else None
    core = ServingCore(manager, metrics, batcher)
    if config.grpc.server_mode == "asyncio":
        from scann_serving.server._grpc_aio import build_asyncio_server

        server, health, port = build_asyncio_server(config.grpc, core)
    else:
        server, health, port = build_server(config.grpc, core)
    server.start()
    log.info("Running gRPC ModelServer at 0.0.0.0:%d ...", port)
    rest = None
    if config.rest.port:
        rest = RestServer(config.rest, core, metrics)
        rest.start()
        log.info("Exporting HTTP/REST API at:localhost:%d ...", rest.port)
    manager.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    followers = [
        threading.Thread(target=_follow_health, args=(core, health, stop), daemon=True),
        threading.Thread(target=_follow_config_file, args=(config, core, stop), daemon=True),
    ]
    for thread in followers:
        thread.start()
    while not stop.wait(1.0):
        pass
    _drain(config, core, health)
    if rest is not None:
        rest.stop()
    manager.stop()
    if batcher is not None:
        batcher.stop()
    log.info("scann-serve stopped")
    return 0


def _drain(config: ServerConfig, core: ServingCore, health: Any) -> None:
    log.info("SIGTERM: draining (grace %.1fs)", config.drain_grace_seconds)
    core.begin_drain()
    health.enter_graceful_shutdown()
    # Calls gRPC received just before the signal are admitted for DRAIN_ADMIT_SECONDS; give
    # them that long to reach a thread before waiting for the calls in flight.
    time.sleep(DRAIN_ADMIT_SECONDS)
    if not core.wait_idle(config.drain_grace_seconds):
        log.warning("grace period over with calls still in flight; stopping anyway")
    # No server.stop(): it CANCELs calls gRPC has received but not yet handed to a thread
    # (callers would see CANCELLED for calls sent before SIGTERM). The core answers new calls
    # UNAVAILABLE until the process exits (os._exit in main), which closes the sockets.
