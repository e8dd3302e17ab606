"""The gRPC adapter on grpc's thread-pool server: TF Serving's PredictionService and
ModelService over the core.

Each servicer method is a line or two: wire proto → domain call → core → wire proto, with
the conversions from `_wire` (shared with `_grpc_aio` and `_rest`). Errors are translated
at one seam (`_translate`) through `_errors.status_for`. This is the default mode
(--grpc_server_mode=threads, --grpc_max_threads): the model call runs on the handler
thread (or the handler waits on the batcher), which gives one caller the lowest latency;
under many concurrent calls the asyncio adapter answers more per second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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


def _translate(method: Callable[..., T]) -> Callable[..., T]:
    """The one seam where domain errors become gRPC statuses."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except Exception as exc:
            code, _, message = status_for(exc)
            context.abort(grpc.StatusCode[code], message)
            raise  # unreachable: abort raises

    return wrapper


class PredictionServicer:
    """tensorflow.serving.PredictionService."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    @_translate
    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        call = keys_call(request, context)
        result = None if call is None else self._core.predict_keys(call)
        if result is None:
            result = self._core.predict(predict_call(request, context))
        return predict_response(result)

    @_translate
    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return metadata_response(self._core, request)

    @_translate
    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        check_kind(self._core, request.model_spec, METHOD_CLASSIFY)

    @_translate
    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        check_kind(self._core, request.model_spec, METHOD_REGRESS)

    @_translate
    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:
        check_multi_inference(self._core, request)


class ModelServicer:
    """tensorflow.serving.ModelService."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    @_translate
    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return status_response(self._core.status(model_ref(request.model_spec)))

    @_translate
    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        return reload_response(self._core, request)


def build_server(config: GrpcConfig, core: ServingCore) -> tuple[Any, Any, int]:
    """(grpc server, health servicer, bound port); TLS from the config when given."""
    from grpc_health.v1 import health, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    executor = ThreadPoolExecutor(config.max_threads, thread_name_prefix="grpc")
    server = grpc.server(executor, options=server_options(config))
    add_services(server, PredictionServicer(core), ModelServicer(core))
    health_servicer = health.HealthServicer()
    for name, status in initial_health().items():
        health_servicer.set(name, status)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(REFLECTED_SERVICES, server)
    return server, health_servicer, bind(server, config)
