"""The gRPC adapter: TF Serving's PredictionService and ModelService over the core.

Each servicer method is a few lines: wire proto → domain call → core → wire proto; the
conversions are module functions that `_grpc_aio` (--grpc_server_mode=asyncio) shares.
Errors are translated at one seam (`_translate`) through `_errors.status_for`. This is the
default mode, grpc's synchronous thread-pool server (--grpc_max_threads): the model call
runs on the handler thread (or the handler waits on the batcher), which gives one caller
the lowest latency; under many concurrent calls the asyncio adapter answers more per second.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2
from scann_serving.server._config import ServerConfig
from scann_serving.server._core import (
    METHOD_CLASSIFY,
    METHOD_REGRESS,
    ModelRef,
    PredictCall,
    PredictResult,
    ServingCore,
)
from scann_serving.server._errors import NUMERIC_CODE, InvalidArgument, status_for
from scann_serving.server._tensors import array_to_proto, proto_to_array
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

T = TypeVar("T")
MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving: builder.SetMaxMessageSize(INT32_MAX)
SERVICE_NAMES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
REFLECTED_SERVICES = (
    *SERVICE_NAMES,
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
)


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


def model_ref(spec: Any) -> ModelRef:
    """A ModelRef from a tensorflow.serving.ModelSpec."""
    if not spec.name:
        raise InvalidArgument("model_spec.name is empty; name the model to call")
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return ModelRef(spec.name, version=int(spec.version.value))
    if choice == "version_label":
        return ModelRef(spec.name, label=spec.version_label)
    return ModelRef(spec.name)


def _deadline(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def predict_response(result: PredictResult) -> Any:
    """A PredictResponse from a core result."""
    response = predict_pb2.PredictResponse()
    response.model_spec.name = result.model
    response.model_spec.version.value = result.version
    response.model_spec.signature_name = result.signature
    for key, value in result.outputs.items():
        array_to_proto(value, response.outputs[key])
    return response


def predict_call(request: Any, context: Any) -> PredictCall:
    """A PredictCall from a PredictRequest (inputs converted, deadline from the context)."""
    return PredictCall(
        model=model_ref(request.model_spec),
        signature=request.model_spec.signature_name,
        inputs={key: proto_to_array(value, key) for key, value in request.inputs.items()},
        output_filter=tuple(request.output_filter),
        deadline=_deadline(context),
    )


def metadata_response(core: ServingCore, request: Any) -> Any:
    """A GetModelMetadataResponse (signature_def and/or scann_manifest, as requested)."""
    meta = core.metadata(model_ref(request.model_spec), list(request.metadata_field))
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = meta.model
    response.model_spec.version.value = meta.version
    if "signature_def" in request.metadata_field:
        defs = get_model_metadata_pb2.SignatureDefMap()
        for key, value in meta.signature_defs.items():
            defs.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(defs)
    if "scann_manifest" in request.metadata_field and meta.manifest is not None:
        manifest = struct_pb2.Struct()
        manifest.update(meta.manifest)
        response.metadata["scann_manifest"].Pack(manifest)
    return response


def check_kind(core: ServingCore, spec: Any, method: str) -> None:
    """Classify/Regress on one model_spec: always raises, with TF Serving's status."""
    kind = "classification" if method == METHOD_CLASSIFY else "regression"
    core.check_method(model_ref(spec), spec.signature_name, method, kind)


def check_multi_inference(core: ServingCore, request: Any) -> None:
    """MultiInference: TF Serving's answer for every task (scann-serve has no such signatures)."""
    if not request.tasks:
        raise InvalidArgument("MultiInferenceRequest has no tasks")
    for task in request.tasks:
        if task.method_name not in (METHOD_CLASSIFY, METHOD_REGRESS):
            raise InvalidArgument(f"Unsupported signature method_name: {task.method_name}")
        check_kind(core, task.model_spec, task.method_name)


def reload_response(core: ServingCore, request: Any) -> Any:
    """Applies HandleReloadConfigRequest's config; an OK ReloadConfigResponse."""
    core.reload(request.config)
    response = model_management_pb2.ReloadConfigResponse()
    response.status.error_code = 0
    return response


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    @_translate
    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        return predict_response(self._core.predict(predict_call(request, context)))

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


def status_response(records: list[Any]) -> Any:
    """A GetModelStatusResponse from the manager's version records."""
    response = get_model_status_pb2.GetModelStatusResponse()
    state_enum = get_model_status_pb2.ModelVersionStatus.State
    for record in records:
        status = response.model_version_status.add()
        status.version = record.version
        status.state = state_enum.Value(record.state)
        status.status.error_code = NUMERIC_CODE[record.error_code]
        status.status.error_message = record.error_message
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    @_translate
    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return status_response(self._core.status(model_ref(request.model_spec)))

    @_translate
    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        return reload_response(self._core, request)


def server_options(config: ServerConfig) -> list[tuple[str, Any]]:
    """Channel arguments: TF Serving's message limits, then --grpc_channel_arguments."""
    defaults = {
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.so_reuseport": 0,
    }
    # --grpc_channel_arguments override the defaults (gRPC would keep the first duplicate).
    return list({**defaults, **dict(config.grpc_options)}.items())


def bind(server: Any, config: ServerConfig) -> int:
    """Adds the --port listener (TLS from --ssl_config_file) to a sync or aio server."""
    address = f"0.0.0.0:{config.port}"
    if config.tls is None:
        return int(server.add_insecure_port(address))
    credentials = grpc.ssl_server_credentials(
        [(config.tls.server_key, config.tls.server_cert)],
        root_certificates=config.tls.custom_ca,
        require_client_auth=config.tls.client_verify,
    )
    return int(server.add_secure_port(address, credentials))


def build_server(config: ServerConfig, core: ServingCore) -> tuple[Any, Any, int]:
    """(grpc server, health servicer, bound port); TLS from the config when given."""
    from grpc_health.v1 import health, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    executor = ThreadPoolExecutor(config.grpc_max_threads, thread_name_prefix="grpc")
    server = grpc.server(executor, options=server_options(config))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(REFLECTED_SERVICES, server)
    return server, health_servicer, bind(server, config)
