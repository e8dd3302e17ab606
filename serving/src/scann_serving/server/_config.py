"""The server's frozen configuration and the TF Serving text-proto files behind it.

`main()` turns flags into one `ServerConfig`; nothing here reads flags or the
environment at import time. Config files are parsed exactly as tensorflow_model_server
parses them (protobuf text format) and a bad file fails at start with its name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from scann_serving.server._protos import BatchingParameters, MonitoringConfig, SSLConfig

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
DEFAULT_MAX_BATCH_SIZE = 1000  # TF Serving's BasicBatchScheduler defaults
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_BATCH_TIMEOUT_MICROS = 0


class ConfigError(ValueError):
    """A flag or config file is invalid; the message names it and the fix."""


@dataclass(frozen=True)
class BatchingConfig:
    """Inter-request batching (from --batching_parameters_file, TF Serving's BatchingParameters)."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    num_batch_threads: int = 1
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES


@dataclass(frozen=True)
class TlsConfig:
    """gRPC TLS from --ssl_config_file: PEM contents, as in TF Serving's SSLConfig."""

    server_key: bytes
    server_cert: bytes
    custom_ca: bytes | None
    client_verify: bool


#: --grpc_server_mode values; the first is the default.
GRPC_SERVER_MODES = ("threads", "asyncio")


@dataclass(frozen=True)
class ServerConfig:
    """Everything `scann-serve` was started with (immutable)."""

    port: int = 8500
    rest_api_port: int = 0
    rest_api_num_threads: int = 8
    rest_api_timeout_in_ms: int = 30_000
    model_config: Any = None  # tensorflow.serving.ModelServerConfig
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    file_system_poll_wait_seconds: int = 1
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    batching: BatchingConfig | None = None
    tls: TlsConfig | None = None
    prometheus_paths: tuple[str, ...] = (DEFAULT_PROMETHEUS_PATH,)
    grpc_max_threads: int = 8
    grpc_options: tuple[tuple[str, Any], ...] = ()
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    drain_grace_seconds: float = 10.0
    max_request_batch_size: int = 10_000
    grpc_server_mode: str = "threads"  # or "asyncio" (GRPC_SERVER_MODES)
    extra: dict[str, Any] = field(default_factory=dict)


def _read_text_proto(path: str, message: Any, flag: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{flag}={path}: cannot read it ({exc.strerror})") from exc
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        kind = type(message).DESCRIPTOR.full_name
        raise ConfigError(f"{flag}={path}: not a valid {kind} text proto: {exc}") from exc


def single_model_config(model_name: str, model_base_path: str) -> Any:
    """The ModelServerConfig --model_name/--model_base_path stand for."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = model_name, model_base_path, "tensorflow"
    return config


def load_model_server_config(path: str) -> Any:
    """Parses a --model_config_file (ModelServerConfig text proto) and validates it."""
    from tensorflow_serving.config import model_server_config_pb2

    config = _read_text_proto(
        path, model_server_config_pb2.ModelServerConfig(), "--model_config_file"
    )
    validate_model_server_config(config, f"--model_config_file={path}")
    return config


def validate_model_server_config(config: Any, where: str) -> None:
    """Raises ConfigError unless every model has a unique name and a base path."""
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{where}: only model_config_list is supported (no custom_model_config)")
    names: set[str] = set()
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise ConfigError(
                f"{where}: every model needs a name and a base_path (got {model.name!r})"
            )
        if model.name in names:
            raise ConfigError(f"{where}: model name {model.name!r} appears twice")
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(
                f"{where}: model {model.name!r} has model_platform "
                f"{model.model_platform!r}; scann-serve serves 'tensorflow' models"
            )
        names.add(model.name)


def load_batching(path: str) -> BatchingConfig:
    """Parses a --batching_parameters_file (BatchingParameters text proto)."""
    defaults = BatchingConfig(num_batch_threads=max(1, os.cpu_count() or 1))
    if not path:
        return defaults
    params = _read_text_proto(path, BatchingParameters(), "--batching_parameters_file")

    def get(name: str, default: int) -> int:
        return int(getattr(params, name).value) if params.HasField(name) else default

    config = BatchingConfig(
        max_batch_size=get("max_batch_size", defaults.max_batch_size),
        batch_timeout_micros=get("batch_timeout_micros", defaults.batch_timeout_micros),
        num_batch_threads=get("num_batch_threads", defaults.num_batch_threads),
        max_enqueued_batches=get("max_enqueued_batches", defaults.max_enqueued_batches),
    )
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--batching_parameters_file={path}: {name} must be >= 1")
    if config.batch_timeout_micros < 0:
        raise ConfigError(f"--batching_parameters_file={path}: batch_timeout_micros must be >= 0")
    return config


def load_tls(path: str) -> TlsConfig | None:
    """Parses a --ssl_config_file (SSLConfig text proto with PEM contents)."""
    if not path:
        return None
    ssl = _read_text_proto(path, SSLConfig(), "--ssl_config_file")
    if not ssl.server_key or not ssl.server_cert:
        raise ConfigError(
            f"--ssl_config_file={path}: server_key and server_cert (PEM text) are required"
        )
    if ssl.client_verify and not ssl.custom_ca:
        raise ConfigError(
            f"--ssl_config_file={path}: client_verify needs custom_ca to check clients against"
        )
    return TlsConfig(
        server_key=ssl.server_key.encode(),
        server_cert=ssl.server_cert.encode(),
        custom_ca=ssl.custom_ca.encode() or None,
        client_verify=ssl.client_verify,
    )


def load_prometheus_paths(path: str) -> tuple[str, ...]:
    """Metric paths: always the default one, plus a --monitoring_config_file's enabled path."""
    if not path:
        return (DEFAULT_PROMETHEUS_PATH,)
    monitoring = _read_text_proto(path, MonitoringConfig(), "--monitoring_config_file")
    prometheus = monitoring.prometheus_config
    custom = prometheus.path if prometheus.enable and prometheus.path else DEFAULT_PROMETHEUS_PATH
    if not custom.startswith("/"):
        raise ConfigError(
            f"--monitoring_config_file={path}: prometheus_config.path must start with '/'"
        )
    return tuple(dict.fromkeys((DEFAULT_PROMETHEUS_PATH, custom)))


def parse_channel_arguments(value: str) -> tuple[tuple[str, Any], ...]:
    """--grpc_channel_arguments 'key=value,key=value' (ints where they parse), as TF Serving."""
    out: list[tuple[str, Any]] = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            out.append((key, int(raw)))
        except ValueError:
            out.append((key, raw))
    return tuple(out)
