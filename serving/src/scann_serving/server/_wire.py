"""TF Serving's protos ↔ the core's domain types: the conversions every transport shares.

The adapters stand side by side over this module and only translate their transport:
`_grpc` (thread-pool gRPC) and `_grpc_aio` (asyncio gRPC) call the functions here from
their servicer methods, `_rest` + `_json` use the status conversion for the REST status
page. Nothing here knows about threads, event loops or HTTP. The gRPC listener settings
both gRPC adapters bind with (TF Serving's message limits, TLS, service names) are here
too, so neither gRPC adapter imports the other.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import struct_pb2
from scann_serving.client.contract import (
    MANIFEST_METADATA_FIELD,
    QUERY,
    SIGNATURE_DEF_METADATA_FIELD,
    K,
)
from scann_serving.server import _pb
from scann_serving.server._config import GrpcConfig
from scann_serving.server._core import (
    METHOD_CLASSIFY,
    METHOD_REGRESS,
    KeysCall,
    ModelRef,
    PredictCall,
    PredictResult,
    ServingCore,
)
from scann_serving.server._errors import NUMERIC_CODE, InvalidArgument
from scann_serving.server._manager import VersionRecord
from scann_serving.server._pb import (
    GetModelMetadataResponse,
    GetModelStatusResponse,
    ModelVersionStatus,
    PredictResponse,
    ReloadConfigResponse,
    SignatureDefMap,
)
from scann_serving.server._tensors import array_to_proto, proto_to_array

MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving: builder.SetMaxMessageSize(INT32_MAX)
SERVICE_NAMES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
REFLECTED_SERVICES = (
    *SERVICE_NAMES,
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
)


# --- requests → domain ---------------------------------------------------------------
#: ModelRefs by (name, version choice, value): most calls name the same few models, and
#: building the frozen dataclass costs more than the dict lookup. Bounded, since the names
#: come from callers.
_REFS: dict[tuple[str, str | None, Any], ModelRef] = {}
_MAX_CACHED_REFS = 1024


def model_ref(spec: Any) -> ModelRef:
    """A ModelRef from a tensorflow.serving.ModelSpec."""
    name = spec.name
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        key: tuple[str, str | None, Any] = (name, choice, spec.version.value)
    elif choice == "version_label":
        key = (name, choice, spec.version_label)
    else:
        key = (name, None, None)
    ref = _REFS.get(key)
    if ref is None:
        ref = _new_ref(name, choice, key[2])
        if len(_REFS) < _MAX_CACHED_REFS:
            _REFS[key] = ref
    return ref


def _new_ref(name: str, choice: str | None, value: Any) -> ModelRef:
    if not name:
        raise InvalidArgument("model_spec.name is empty; name the model to call")
    if choice == "version":
        return ModelRef(name, version=int(value))
    if choice == "version_label":
        return ModelRef(name, label=value)
    return ModelRef(name)


def deadline(context: Any) -> float | None:
    """The call's deadline as time.monotonic() seconds (a sync or asyncio gRPC context)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def predict_call(request: Any, context: Any) -> PredictCall:
    """A PredictCall from a PredictRequest (inputs converted, deadline from the context)."""
    return PredictCall(
        model=model_ref(request.model_spec),
        signature=request.model_spec.signature_name,
        inputs={key: proto_to_array(value, key) for key, value in request.inputs.items()},
        output_filter=tuple(request.output_filter),
        deadline=deadline(context),
    )


#: The query tensor dtypes a `KeysCall` carries, by DataType number, and their field.
_KEY_TYPES = {
    _pb.DataType.values_by_name["DT_STRING"].number: ("string", "string_val"),
    _pb.DataType.values_by_name["DT_INT64"].number: ("int64", "int64_val"),
}
_DT_INT32 = _pb.DataType.values_by_name["DT_INT32"].number


def keys_call(request: Any, context: Any) -> KeysCall | None:
    """A KeysCall when the PredictRequest is the common one: a `query` of one value per
    row (strings or int64 ids, shape [rows]), maybe a scalar int32 `k`, no output_filter.
    None for anything else, which `predict_call` converts and the core checks in full."""
    inputs = request.inputs
    count = len(inputs)
    if count > 2 or request.output_filter:
        return None
    query = inputs.get(QUERY)
    if query is None:
        return None
    kind = _KEY_TYPES.get(query.dtype)
    if kind is None:
        return None
    shape = query.tensor_shape
    dims = shape.dim
    # (A string tensor's tensor_content is ignored, as the full path ignores it.)
    if len(dims) != 1 or shape.unknown_rank or (kind[0] != "string" and query.tensor_content):
        return None
    keys = getattr(query, kind[1])[:]  # a list (slicing costs less than list())
    if dims[0].size != len(keys):
        return None
    k = None
    if count == 2:
        k_proto = inputs.get(K)
        if k_proto is None or k_proto.dtype != _DT_INT32 or len(k_proto.int_val) != 1:
            return None
        shape = k_proto.tensor_shape
        if shape.dim or shape.unknown_rank or k_proto.tensor_content:
            return None
        k = k_proto.int_val[0]
    spec = request.model_spec
    return KeysCall(model_ref(spec), spec.signature_name, keys, kind[0], k, deadline(context))


# --- domain → responses --------------------------------------------------------------
#: Responses holding only the model_spec, by (model, version, signature): a response
#: starts as a copy of one (cheaper than setting the three fields). Bounded.
_HEADS: dict[tuple[str, int, str], Any] = {}
_MAX_CACHED_HEADS = 1024


def predict_response(result: PredictResult) -> Any:
    """A PredictResponse from a core result."""
    key = (result.model, result.version, result.signature)
    head = _HEADS.get(key)
    if head is None:
        head = PredictResponse()
        head.model_spec.name = result.model
        head.model_spec.version.value = result.version
        head.model_spec.signature_name = result.signature
        if len(_HEADS) < _MAX_CACHED_HEADS:
            _HEADS[key] = head
    response = PredictResponse()
    response.CopyFrom(head)
    outputs = response.outputs
    for name, value in result.outputs.items():
        array_to_proto(value, outputs[name])
    return response


def status_response(records: list[VersionRecord]) -> Any:
    """A GetModelStatusResponse from the manager's version records (gRPC and REST)."""
    response = GetModelStatusResponse()
    state_enum = ModelVersionStatus.State
    for record in records:
        status = response.model_version_status.add()
        status.version = record.version
        status.state = state_enum.Value(record.state)
        status.status.error_code = NUMERIC_CODE[record.error_code]
        status.status.error_message = record.error_message
    return response


# --- whole calls whose answer is only a conversion (both gRPC adapters) ----------------
def metadata_response(core: ServingCore, request: Any) -> Any:
    """A GetModelMetadataResponse (signature_def and/or scann_manifest, as requested)."""
    meta = core.metadata(model_ref(request.model_spec), list(request.metadata_field))
    response = GetModelMetadataResponse()
    response.model_spec.name = meta.model
    response.model_spec.version.value = meta.version
    if SIGNATURE_DEF_METADATA_FIELD in request.metadata_field:
        defs = SignatureDefMap()
        for key, value in meta.signature_defs.items():
            defs.signature_def[key].CopyFrom(value)
        response.metadata[SIGNATURE_DEF_METADATA_FIELD].Pack(defs)
    if MANIFEST_METADATA_FIELD in request.metadata_field and meta.manifest is not None:
        manifest = struct_pb2.Struct()
        manifest.update(meta.manifest)
        response.metadata[MANIFEST_METADATA_FIELD].Pack(manifest)
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
    response = ReloadConfigResponse()
    response.status.error_code = 0
    return response


# --- the services (both gRPC adapters) ------------------------------------------------
#: Method -> (request class, response class) of TF Serving's two services, from the TF-free
#: messages of `_pb`, so neither adapter needs tensorflow-serving-api's generated stubs.
_METHODS: dict[str, dict[str, tuple[Any, Any]]] = {
    SERVICE_NAMES[0]: {
        "Classify": (_pb.ClassificationRequest, _pb.ClassificationResponse),
        "Regress": (_pb.RegressionRequest, _pb.RegressionResponse),
        "Predict": (_pb.PredictRequest, _pb.PredictResponse),
        "MultiInference": (_pb.MultiInferenceRequest, _pb.MultiInferenceResponse),
        "GetModelMetadata": (_pb.GetModelMetadataRequest, _pb.GetModelMetadataResponse),
    },
    SERVICE_NAMES[1]: {
        "GetModelStatus": (_pb.GetModelStatusRequest, _pb.GetModelStatusResponse),
        "HandleReloadConfigRequest": (_pb.ReloadConfigRequest, _pb.ReloadConfigResponse),
    },
}


def add_services(server: Any, prediction: Any, model: Any) -> None:
    """Registers the PredictionService and ModelService servicers (sync or asyncio)."""
    for service, servicer in zip(SERVICE_NAMES, (prediction, model), strict=True):
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                getattr(servicer, method),
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )
            for method, (request, response) in _METHODS[service].items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


# --- the gRPC listener (both gRPC adapters) ------------------------------------------
def server_options(config: GrpcConfig) -> list[tuple[str, Any]]:
    """Channel arguments: TF Serving's message limits, then --grpc_channel_arguments."""
    defaults = {
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.so_reuseport": 0,
    }
    # --grpc_channel_arguments override the defaults (gRPC would keep the first duplicate).
    return list({**defaults, **dict(config.options)}.items())


def initial_health() -> dict[str, Any]:
    """What health answers before the first readiness check: NOT_SERVING for the server
    and each service. grpc's HealthServicer starts the server as SERVING, which would tell
    a readiness probe (or a test) to send calls before any model is loaded."""
    from grpc_health.v1 import health_pb2

    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    return {name: not_serving for name in ("", *SERVICE_NAMES)}


def bind(server: Any, config: GrpcConfig) -> int:
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
