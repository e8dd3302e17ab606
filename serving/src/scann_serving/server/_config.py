"""The server's frozen configuration, its flags, and the TF Serving text-proto files behind it.

One definition: each setting a flag sets is a dataclass field below, whose default is
the flag's default and whose `flag()` metadata gives the flag's name and help; `_cli`
builds the parser and the config from these fields, so the two cannot disagree. The
config is split by the component that reads it (`GrpcConfig` for the gRPC adapters,
`RestConfig` for REST, `ModelsConfig` for the model manager, `BatchingConfig` for the
batcher, `TensorFlowConfig` for TensorFlow's thread pools) and each gets only its own.

`main()` turns flags into one `ServerConfig`; nothing here reads flags or the
environment at import time. Config files are parsed exactly as tensorflow_model_server
parses them (protobuf text format) and a bad file fails at start with its name.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from scann_serving.server._protos import BatchingParameters, MonitoringConfig, SSLConfig

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
DEFAULT_MAX_BATCH_SIZE = 1000  # TF Serving's BasicBatchScheduler defaults
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_BATCH_TIMEOUT_MICROS = 0
#: Field metadata key holding a field's `FlagSpec`.
FLAG = "scann_serving.flag"
#: --grpc_server_mode values; the first is the default.
#: --backend values; the first is the default.
BACKENDS = ("auto", "tensorflow", "native")
GRPC_SERVER_MODES = ("threads", "asyncio")


class ConfigError(ValueError):
    """A flag or config file is invalid; the message names it and the fix."""


@dataclass(frozen=True)
class FlagSpec:
    """How a config field is set on the command line (`--name=value`)."""

    help: str
    name: str = ""  # the flag's name when it is not the field's
    choices: tuple[str, ...] = ()


def flag(
    default: Any = MISSING,
    help: str = "",
    *,
    name: str = "",
    choices: tuple[str, ...] = (),
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field that is also a flag: its default is the flag's default."""
    metadata = {FLAG: FlagSpec(help, name, choices)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _four_per_cpu() -> int:
    return 4 * (os.cpu_count() or 1)


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


@dataclass(frozen=True)
class GrpcConfig:
    """The gRPC listener and its servicers (`_grpc`, `_grpc_aio`)."""

    port: int = flag(8500, "Port to listen on for gRPC API")
    max_threads: int = flag(
        help="Threads running model calls for gRPC",
        name="grpc_max_threads",
        default_factory=_four_per_cpu,
    )
    server_mode: str = flag(
        GRPC_SERVER_MODES[0],
        "scann-serve: gRPC on a thread pool (default; lowest latency for one caller) or "
        "on one asyncio event loop (more calls per second under concurrent load)",
        name="grpc_server_mode",
        choices=GRPC_SERVER_MODES,
    )
    options: tuple[tuple[str, Any], ...] = ()  # from --grpc_channel_arguments
    tls: TlsConfig | None = None  # from --ssl_config_file


@dataclass(frozen=True)
class RestConfig:
    """The HTTP/REST server and the Prometheus metrics page (`_rest`)."""

    port: int = flag(
        0,
        "Port for the HTTP/REST API (0: no REST API); must differ from --port",
        name="rest_api_port",
    )
    num_threads: int = flag(
        help="Threads for HTTP/REST API processing",
        name="rest_api_num_threads",
        default_factory=_four_per_cpu,
    )
    timeout_in_ms: int = flag(
        30_000, "Timeout for HTTP/REST API calls", name="rest_api_timeout_in_ms"
    )
    prometheus_paths: tuple[str, ...] = (DEFAULT_PROMETHEUS_PATH,)  # + --monitoring_config_file


@dataclass(frozen=True)
class ModelsConfig:
    """Which versions the model manager serves, and how it polls, loads, retries and warms."""

    model_config: Any = None  # tensorflow.serving.ModelServerConfig
    file_system_poll_wait_seconds: int = flag(1, "Seconds between polls for new versions (0: once)")
    max_num_load_retries: int = flag(5, "Retries of a failed version load")
    load_retry_interval_micros: int = flag(60_000_000, "Microseconds between load retries")
    enable_model_warmup: bool = flag(
        True, "Replay assets.extra/tf_serving_warmup_requests before serving"
    )
    num_request_iterations_for_warmup: int = flag(1, "Times each warmup request is replayed")
    max_request_batch_size: int = flag(10_000, "scann-serve: most rows one request may carry")
    backend: str = flag(
        BACKENDS[0],
        "scann-serve: how versions run: native (the version's native bundle, ScaNN without "
        "TensorFlow), tensorflow (the SavedModel) or auto (native where the bundle serves "
        "every signature of the version, else tensorflow)",
        choices=BACKENDS,
    )


@dataclass(frozen=True)
class TensorFlowConfig:
    """TensorFlow's thread pools (0: TensorFlow's own choice)."""

    session_parallelism: int = flag(
        0, "Threads for TensorFlow ops (0: auto)", name="tensorflow_session_parallelism"
    )
    intra_op_parallelism: int = flag(
        0, "Intra-op threads (0: auto)", name="tensorflow_intra_op_parallelism"
    )
    inter_op_parallelism: int = flag(
        0, "Inter-op threads (0: auto)", name="tensorflow_inter_op_parallelism"
    )


@dataclass(frozen=True)
class ServerConfig:
    """Everything `scann-serve` was started with (immutable), one part per component."""

    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    rest: RestConfig = field(default_factory=RestConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    batching: BatchingConfig | None = None  # --enable_batching, --batching_parameters_file
    tensorflow: TensorFlowConfig = field(default_factory=TensorFlowConfig)
    model_config_file: str = flag(
        "", "ModelServerConfig text proto (overrides --model_name/--model_base_path)"
    )
    model_config_file_poll_wait_seconds: int = flag(
        0, "Seconds between re-reads of --model_config_file (0: never)"
    )
    drain_grace_seconds: float = flag(
        10.0, "scann-serve: seconds SIGTERM waits for in-flight calls"
    )


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
    from scann_serving.server._pb import ModelServerConfig

    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = model_name, model_base_path, "tensorflow"
    return config


def load_model_server_config(path: str) -> Any:
    """Parses a --model_config_file (ModelServerConfig text proto) and validates it."""
    from scann_serving.server._pb import ModelServerConfig

    config = _read_text_proto(path, ModelServerConfig(), "--model_config_file")
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
