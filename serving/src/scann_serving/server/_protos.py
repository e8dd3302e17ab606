"""TF Serving config messages that `tensorflow-serving-api` does not ship.

`SSLConfig` (tensorflow_serving/config/ssl_config.proto), `MonitoringConfig`
(monitoring_config.proto) and `BatchingParameters` (servables/tensorflow/
session_bundle_config.proto), rebuilt here from their public field numbers in a private
descriptor pool, so scann-serve parses exactly the text-proto files TF Serving does.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_TYPE = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow.serving"

# (message, [(field name, number, type, type_name or "", repeated)])
_MESSAGES: list[tuple[str, list[tuple[str, int, int, str, bool]]]] = [
    (
        "SSLConfig",
        [
            ("server_key", 1, _TYPE.TYPE_STRING, "", False),
            ("server_cert", 2, _TYPE.TYPE_STRING, "", False),
            ("custom_ca", 3, _TYPE.TYPE_STRING, "", False),
            ("client_verify", 4, _TYPE.TYPE_BOOL, "", False),
        ],
    ),
    (
        "PrometheusConfig",
        [
            ("enable", 1, _TYPE.TYPE_BOOL, "", False),
            ("path", 2, _TYPE.TYPE_STRING, "", False),
        ],
    ),
    (
        "MonitoringConfig",
        [
            (
                "prometheus_config",
                1,
                _TYPE.TYPE_MESSAGE,
                ".tensorflow.serving.PrometheusConfig",
                False,
            )
        ],
    ),
    (
        "BatchingParameters",
        [
            ("max_batch_size", 1, _TYPE.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
            ("batch_timeout_micros", 2, _TYPE.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
            ("max_enqueued_batches", 3, _TYPE.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
            ("num_batch_threads", 4, _TYPE.TYPE_MESSAGE, ".google.protobuf.Int64Value", False),
            ("thread_pool_name", 5, _TYPE.TYPE_MESSAGE, ".google.protobuf.StringValue", False),
            ("allowed_batch_sizes", 6, _TYPE.TYPE_INT64, "", True),
            ("pad_variable_length_inputs", 7, _TYPE.TYPE_BOOL, "", False),
            (
                "enable_large_batch_splitting",
                8,
                _TYPE.TYPE_MESSAGE,
                ".google.protobuf.BoolValue",
                False,
            ),
            (
                "max_execution_batch_size",
                9,
                _TYPE.TYPE_MESSAGE,
                ".google.protobuf.Int64Value",
                False,
            ),
        ],
    ),
]


def _build_classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="scann_serving/server/tf_serving_configs.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    for message_name, fields in _MESSAGES:
        message = file.message_type.add(name=message_name)
        for name, number, field_type, type_name, repeated in fields:
            field = message.field.add(name=name, number=number, type=field_type)
            field.label = _TYPE.LABEL_REPEATED if repeated else _TYPE.LABEL_OPTIONAL
            if type_name:
                field.type_name = type_name
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name, _ in _MESSAGES
    }


_CLASSES = _build_classes()
SSLConfig: Any = _CLASSES["SSLConfig"]
MonitoringConfig: Any = _CLASSES["MonitoringConfig"]
BatchingParameters: Any = _CLASSES["BatchingParameters"]
