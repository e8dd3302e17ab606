"""TF Serving's messages for the server, without TensorFlow or tensorflow-serving-api.

`tensorflow_serving.apis` imports `tensorflow` (its protos depend on TensorFlow's), which
would pull 1.8 GB and half a gigabyte of RSS into `scann-serve --backend=native`. The
client package already carries TF Serving's request, response and tensor messages as
TF-free `.proto` copies (`scann_serving.client._proto`); this module loads those files into
the server's own descriptor pool and adds, from their public field numbers, the few TF
Serving messages the client has no use for: Classify/Regress/MultiInference requests (the
server only reads their `model_spec`s), HandleReloadConfigRequest with `ModelServerConfig`
(also what `--model_config_file` parses), and the `PredictionLog` of warmup files. Fields
the server never reads are left out: protobuf skips unknown fields on the wire, and
tests/server/test_pb.py checks every field here against tensorflow-serving-api's.

A private pool, as in the client: a process that also imports TensorFlow registers the same
full names in protobuf's default pool, which refuses a second definition of a name.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from scann_serving.client._proto import tf_error_pb2, tf_framework_pb2, tf_serving_pb2
from scann_serving.client._proto._pool import POOL as _CLIENT_POOL

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow.serving"
_EXTRA_FILE = "scann_serving/server/tf_serving_server.proto"
#: One field: (name, number, type, message/enum type name or "", label, oneof index or None).
_Field = tuple[str, int, int, str, int, int | None]
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_MSG, _STR, _BYTES = _F.TYPE_MESSAGE, _F.TYPE_STRING, _F.TYPE_BYTES

_POLICY = ".tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy"


def _field(
    name: str,
    number: int,
    kind: int,
    type_name: str = "",
    label: int = _OPT,
    oneof: int | None = None,
) -> _Field:
    return (name, number, kind, type_name, label, oneof)


def _message(
    parent: Any,
    name: str,
    fields: list[_Field],
    *,
    oneofs: tuple[str, ...] = (),
    nested: tuple[tuple[str, list[_Field], tuple[str, ...]], ...] = (),
) -> Any:
    message = parent.add(name=name)
    for oneof_name in oneofs:
        message.oneof_decl.add(name=oneof_name)
    for nested_name, nested_fields, nested_oneofs in nested:
        _message(message.nested_type, nested_name, nested_fields, oneofs=nested_oneofs)
    for field_name, number, kind, type_name, label, oneof in fields:
        field = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
        if oneof is not None:
            field.oneof_index = oneof
    return message


def _extra_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name=_EXTRA_FILE,
        package=_PACKAGE,
        syntax="proto3",
        dependency=[
            "google/protobuf/any.proto",
            tf_error_pb2.DESCRIPTOR.name,
            tf_serving_pb2.DESCRIPTOR.name,
        ],
    )
    spec = ".tensorflow.serving.ModelSpec"
    types = file.message_type
    _message(types, "ClassificationRequest", [_field("model_spec", 1, _MSG, spec)])
    _message(types, "ClassificationResponse", [_field("model_spec", 2, _MSG, spec)])
    _message(types, "RegressionRequest", [_field("model_spec", 1, _MSG, spec)])
    _message(types, "RegressionResponse", [_field("model_spec", 2, _MSG, spec)])
    _message(
        types,
        "InferenceTask",
        [_field("model_spec", 1, _MSG, spec), _field("method_name", 2, _STR)],
    )
    task = ".tensorflow.serving.InferenceTask"
    _message(types, "MultiInferenceRequest", [_field("tasks", 1, _MSG, task, _REP)])
    _message(types, "MultiInferenceResponse", [])  # never sent: MultiInference always errs
    _message(
        types,
        "FileSystemStoragePathSourceConfig",
        [],
        nested=(
            (
                "ServableVersionPolicy",
                [
                    _field("latest", 100, _MSG, f"{_POLICY}.Latest", oneof=0),
                    _field("all", 101, _MSG, f"{_POLICY}.All", oneof=0),
                    _field("specific", 102, _MSG, f"{_POLICY}.Specific", oneof=0),
                ],
                ("policy_choice",),
            ),
        ),
    )
    policy = types[-1].nested_type[0]
    _message(policy.nested_type, "Latest", [_field("num_versions", 1, _F.TYPE_UINT32)])
    _message(policy.nested_type, "All", [])
    _message(policy.nested_type, "Specific", [_field("versions", 1, _F.TYPE_INT64, "", _REP)])
    _message(
        types,
        "LogCollectorConfig",
        [_field("type", 1, _STR), _field("filename_prefix", 2, _STR)],
    )
    _message(types, "SamplingConfig", [_field("sampling_rate", 1, _F.TYPE_DOUBLE)])
    _message(
        types,
        "LoggingConfig",
        [
            _field("log_collector_config", 1, _MSG, ".tensorflow.serving.LogCollectorConfig"),
            _field("sampling_config", 2, _MSG, ".tensorflow.serving.SamplingConfig"),
        ],
    )
    file.enum_type.add(name="ModelType").value.extend(
        [
            descriptor_pb2.EnumValueDescriptorProto(name=name, number=number)
            for number, name in enumerate(("MODEL_TYPE_UNSPECIFIED", "TENSORFLOW", "OTHER"))
        ]
    )
    labels = _message(
        types,
        "ModelConfig",
        [
            _field("name", 1, _STR),
            _field("base_path", 2, _STR),
            _field("model_type", 3, _F.TYPE_ENUM, ".tensorflow.serving.ModelType"),
            _field("model_platform", 4, _STR),
            _field("logging_config", 6, _MSG, ".tensorflow.serving.LoggingConfig"),
            _field("model_version_policy", 7, _MSG, _POLICY),
            _field(
                "version_labels",
                8,
                _MSG,
                ".tensorflow.serving.ModelConfig.VersionLabelsEntry",
                _REP,
            ),
        ],
        nested=(
            (
                "VersionLabelsEntry",
                [_field("key", 1, _STR), _field("value", 2, _F.TYPE_INT64)],
                (),
            ),
        ),
    )
    labels.nested_type[0].options.map_entry = True
    _message(
        types,
        "ModelConfigList",
        [_field("config", 1, _MSG, ".tensorflow.serving.ModelConfig", _REP)],
    )
    _message(
        types,
        "ModelServerConfig",
        [
            _field("model_config_list", 1, _MSG, ".tensorflow.serving.ModelConfigList", oneof=0),
            _field("custom_model_config", 2, _MSG, ".google.protobuf.Any", oneof=0),
        ],
        oneofs=("config",),
    )
    _message(
        types,
        "ReloadConfigRequest",
        [
            _field("config", 1, _MSG, ".tensorflow.serving.ModelServerConfig"),
            _field("metric_names", 2, _STR, "", _REP),
        ],
    )
    _message(
        types,
        "ReloadConfigResponse",
        [_field("status", 1, _MSG, ".tensorflow.serving.StatusProto")],
    )
    _message(
        types,
        "PredictLog",
        [
            _field("request", 1, _MSG, ".tensorflow.serving.PredictRequest"),
            _field("response", 2, _MSG, ".tensorflow.serving.PredictResponse"),
        ],
    )
    # The other kinds of log are only told apart (warmup refuses them), never read: bytes.
    _message(
        types,
        "PredictionLog",
        [
            _field("classify_log", 2, _BYTES, oneof=0),
            _field("regress_log", 3, _BYTES, oneof=0),
            _field("multi_inference_log", 4, _BYTES, oneof=0),
            _field("session_run_log", 5, _BYTES, oneof=0),
            _field("predict_log", 6, _MSG, ".tensorflow.serving.PredictLog", oneof=0),
        ],
        oneofs=("log_type",),
    )
    return file


def _build() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for module_file in ("google/protobuf/any.proto", "google/protobuf/wrappers.proto"):
        proto = descriptor_pb2.FileDescriptorProto()
        _CLIENT_POOL.FindFileByName(module_file).CopyToProto(proto)
        pool.Add(proto)
    for module in (tf_error_pb2, tf_framework_pb2, tf_serving_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.Add(_extra_file())
    return pool


POOL = _build()


def message(name: str) -> Any:
    """The message class of `tensorflow.serving.<name>` (or a full name) in the server's pool."""
    full = name if "." in name else f"{_PACKAGE}.{name}"
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full))


TensorProto: Any = message("tensorflow.TensorProto")
TensorShapeProto: Any = message("tensorflow.TensorShapeProto")
SignatureDef: Any = message("tensorflow.SignatureDef")
DataType: Any = POOL.FindEnumTypeByName("tensorflow.DataType")
ModelSpec: Any = message("ModelSpec")
PredictRequest: Any = message("PredictRequest")
PredictResponse: Any = message("PredictResponse")
SignatureDefMap: Any = message("SignatureDefMap")
GetModelMetadataRequest: Any = message("GetModelMetadataRequest")
GetModelMetadataResponse: Any = message("GetModelMetadataResponse")
GetModelStatusRequest: Any = message("GetModelStatusRequest")
GetModelStatusResponse: Any = message("GetModelStatusResponse")
ModelVersionStatus: Any = message("ModelVersionStatus")
ClassificationRequest: Any = message("ClassificationRequest")
ClassificationResponse: Any = message("ClassificationResponse")
RegressionRequest: Any = message("RegressionRequest")
RegressionResponse: Any = message("RegressionResponse")
MultiInferenceRequest: Any = message("MultiInferenceRequest")
MultiInferenceResponse: Any = message("MultiInferenceResponse")
ModelServerConfig: Any = message("ModelServerConfig")
ReloadConfigRequest: Any = message("ReloadConfigRequest")
ReloadConfigResponse: Any = message("ReloadConfigResponse")
PredictionLog: Any = message("PredictionLog")
PredictLog: Any = message("PredictLog")
