"""The gRPC adapter on `grpc.aio` (--grpc_server_mode=asyncio): same services, one event loop.

The thread-pool server (`_grpc`) hands every call to a pool thread, and under concurrent
load those threads, the batcher and TensorFlow's pool trade the GIL so often that about
half of the server's CPU goes to context switches (perf, 16 clients). Here one event-loop
thread parses, checks and answers every call; the model runs in the batcher's worker (or,
without batching, on a --grpc_max_threads pool), so the loop never waits on TensorFlow.
Measured with a native client at 16 concurrent calls this serves 30-70 % more calls per
second (README, benchmark); a lone Python caller waits up to ~0.1 ms longer, so the
thread-pool server stays the default. The request/response conversions are `_wire`'s,
shared with the thread-pool adapter (`_grpc`) and REST.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from scann_serving.server._config import GrpcConfig
from scann_serving.server._core import METHOD_CLASSIFY, METHOD_REGRESS, ServingCore
from scann_serving.server._errors import status_for
from scann_serving.server._wire import (
    REFLECTED_SERVICES,
    add_services,
    bind,
    check_kind,
    check_multi_inference,
    initial_health,
    keys_call,
    metadata_response,
    model_ref,
    predict_call,
    predict_response,
    reload_response,
    server_options,
    status_response,
)

T = TypeVar("T")
LOOP_CALL_TIMEOUT_SECONDS = 30.0  # building, starting, health changes: calls onto the loop


def _translate(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """The one seam where domain errors become gRPC statuses (asyncio servicers)."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except Exception as exc:
            code, _, message = status_for(exc)
            await context.abort(grpc.StatusCode[code], message)
            raise  # unreachable: abort raises

    return wrapper


class AsyncPredictionServicer:
    """tensorflow.serving.PredictionService on the event loop."""

    def __init__(self, core: ServingCore, executor: ThreadPoolExecutor) -> None:
        self._core, self._executor = core, executor

    @_translate
    async def Predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        short = keys_call(request, context)  # a few keys: answered on the loop, microseconds
        result = None if short is None else self._core.predict_keys(short)
        if result is None:
            call = predict_call(request, context)
            result = await self._core.predict_async(call, self._executor)
        return predict_response(result)

    @_translate
    async def GetModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return metadata_response(self._core, request)

    @_translate
    async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        check_kind(self._core, request.model_spec, METHOD_CLASSIFY)

    @_translate
    async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        check_kind(self._core, request.model_spec, METHOD_REGRESS)

    @_translate
    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        check_multi_inference(self._core, request)


class AsyncModelServicer:
    """tensorflow.serving.ModelService on the event loop (reloads run off the loop)."""

    def __init__(self, core: ServingCore, executor: ThreadPoolExecutor) -> None:
        self._core, self._executor = core, executor

    @_translate
    async def GetModelStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return status_response(self._core.status(model_ref(request.model_spec)))

    @_translate
    async def HandleReloadConfigRequest(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        loop = asyncio.get_running_loop()  # loading versions takes seconds: not on the loop
        return await loop.run_in_executor(self._executor, reload_response, self._core, request)


def _on_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs `coroutine` on the server's loop from another thread and waits for its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(LOOP_CALL_TIMEOUT_SECONDS)


class _Health:
    """The asyncio health servicer, driven from other threads as the sync one is."""

    def __init__(self, servicer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._servicer, self._loop = servicer, loop

    def set(self, service: str, status: Any) -> None:
        _on_loop(self._loop, self._servicer.set(service, status))

    def enter_graceful_shutdown(self) -> None:
        _on_loop(self._loop, self._servicer.enter_graceful_shutdown())


class AsyncioServer:
    """A `grpc.aio` server on its own event-loop thread, bound on construction.

    `start()` starts serving. There is no stop: as with the thread-pool server, calls are
    drained by the core and the sockets close when the process exits.
    """

    def __init__(self, config: GrpcConfig, core: ServingCore) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-aio", daemon=True)
        self._thread.start()
        self._executor = ThreadPoolExecutor(config.max_threads, thread_name_prefix="grpc")
        self._server, health_servicer, self.port = _on_loop(self._loop, self._build(config, core))
        self.health = _Health(health_servicer, self._loop)

    async def _build(self, config: GrpcConfig, core: ServingCore) -> tuple[Any, Any, int]:
        from grpc_health.v1 import _async as health_aio
        from grpc_health.v1 import health_pb2_grpc
        from grpc_reflection.v1alpha import reflection

        server = grpc.aio.server(options=server_options(config))
        add_services(
            server,
            AsyncPredictionServicer(core, self._executor),
            AsyncModelServicer(core, self._executor),
        )
        health_servicer = health_aio.HealthServicer()
        for name, status in initial_health().items():
            await health_servicer.set(name, status)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(REFLECTED_SERVICES, server)
        return server, health_servicer, bind(server, config)

    def start(self) -> None:
        """Starts serving on the bound port."""
        _on_loop(self._loop, self._server.start())


def build_asyncio_server(config: GrpcConfig, core: ServingCore) -> tuple[Any, Any, int]:
    """(server with start(), health with set()/enter_graceful_shutdown(), bound port)."""
    server = AsyncioServer(config, core)
    return server, server.health, server.port
