"""`scann-serve`: command-line flags with tensorflow_model_server's names and meanings.

Flags are parsed in `main()` into one frozen `ServerConfig`; config files are read and
checked before anything starts, and a bad flag or file exits 2 with a message naming it.
Flags beyond TF Serving's: --drain_grace_seconds, --max_request_batch_size,
--grpc_server_mode.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from scann_serving.server._config import (
    GRPC_SERVER_MODES,
    ConfigError,
    ServerConfig,
    load_batching,
    load_model_server_config,
    load_prometheus_paths,
    load_tls,
    parse_channel_arguments,
    single_model_config,
)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "t"):
        return True
    if lowered in ("0", "false", "no", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (TF Serving's flag names, `--flag=value` or `--flag value`)."""
    cpus = os.cpu_count() or 1
    p = argparse.ArgumentParser(
        prog="scann-serve",
        description="A ScaNN-enabled model server speaking TensorFlow Serving's gRPC and REST API.",
        allow_abbrev=False,
    )

    def flag(name: str, kind: type | object, default: object, text: str) -> None:
        if kind is bool:
            p.add_argument(
                f"--{name}", type=_bool, nargs="?", const=True, default=default, help=text
            )
        else:
            p.add_argument(f"--{name}", type=kind, default=default, help=text)  # type: ignore[arg-type]

    flag("port", int, 8500, "Port to listen on for gRPC API")
    flag(
        "rest_api_port",
        int,
        0,
        "Port for the HTTP/REST API (0: no REST API); must differ from --port",
    )
    flag("rest_api_num_threads", int, 4 * cpus, "Threads for HTTP/REST API processing")
    flag("rest_api_timeout_in_ms", int, 30000, "Timeout for HTTP/REST API calls")
    flag("enable_batching", bool, False, "Enable inter-request batching")
    flag(
        "batching_parameters_file",
        str,
        "",
        "BatchingParameters text proto (needs --enable_batching)",
    )
    flag("allow_version_labels_for_unavailable_models", bool, False, "Accepted for compatibility")
    flag(
        "model_config_file",
        str,
        "",
        "ModelServerConfig text proto (overrides --model_name/--model_base_path)",
    )
    flag(
        "model_config_file_poll_wait_seconds",
        int,
        0,
        "Seconds between re-reads of --model_config_file (0: never)",
    )
    flag("model_name", str, "default", "Name of the model (ignored with --model_config_file)")
    flag("model_base_path", str, "", "Path holding the model's numeric version directories")
    flag("max_num_load_retries", int, 5, "Retries of a failed version load")
    flag("load_retry_interval_micros", int, 60_000_000, "Microseconds between load retries")
    flag(
        "file_system_poll_wait_seconds", int, 1, "Seconds between polls for new versions (0: once)"
    )
    flag("ssl_config_file", str, "", "SSLConfig text proto for gRPC TLS/mTLS")
    flag("monitoring_config_file", str, "", "MonitoringConfig text proto (Prometheus path)")
    flag("grpc_channel_arguments", str, "", "Comma-separated gRPC server arguments, key=value")
    flag("grpc_max_threads", int, 4 * cpus, "Threads running model calls for gRPC")
    flag(
        "enable_model_warmup",
        bool,
        True,
        "Replay assets.extra/tf_serving_warmup_requests before serving",
    )
    flag("num_request_iterations_for_warmup", int, 1, "Times each warmup request is replayed")
    flag("saved_model_tags", str, "serve", "Accepted for compatibility (SavedModel tag 'serve')")
    flag("tensorflow_session_parallelism", int, 0, "Threads for TensorFlow ops (0: auto)")
    flag("tensorflow_intra_op_parallelism", int, 0, "Intra-op threads (0: auto)")
    flag("tensorflow_inter_op_parallelism", int, 0, "Inter-op threads (0: auto)")
    flag(
        "drain_grace_seconds", float, 10.0, "scann-serve: seconds SIGTERM waits for in-flight calls"
    )
    flag("max_request_batch_size", int, 10_000, "scann-serve: most rows one request may carry")
    p.add_argument(
        "--grpc_server_mode",
        choices=GRPC_SERVER_MODES,
        default=GRPC_SERVER_MODES[0],
        help="scann-serve: gRPC on a thread pool (default; lowest latency for one caller) or "
        "on one asyncio event loop (more calls per second under concurrent load)",
    )
    p.add_argument("--version", action="store_true", help="Display version")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Turns parsed flags into the frozen ServerConfig (reading and checking config files)."""
    if args.model_config_file:
        model_config = load_model_server_config(args.model_config_file)
    elif args.model_base_path:
        model_config = single_model_config(args.model_name, args.model_base_path)
    else:
        raise ConfigError("give --model_base_path (with --model_name) or --model_config_file")
    if args.batching_parameters_file and not args.enable_batching:
        raise ConfigError("You supplied --batching_parameters_file without --enable_batching")
    if args.rest_api_port and args.rest_api_port == args.port:
        raise ConfigError("--rest_api_port cannot be same as --port; use a different port")
    for name in ("port", "rest_api_port"):
        if not 0 <= getattr(args, name) <= 65535:
            raise ConfigError(f"--{name}={getattr(args, name)} is not a port number")
    if args.drain_grace_seconds < 0 or args.max_request_batch_size < 1 or args.grpc_max_threads < 1:
        raise ConfigError(
            "--drain_grace_seconds must be >= 0, --max_request_batch_size and --grpc_max_threads >= 1"
        )
    return ServerConfig(
        port=args.port,
        rest_api_port=args.rest_api_port,
        rest_api_num_threads=args.rest_api_num_threads,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        model_config=model_config,
        model_config_file=args.model_config_file,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_micros=args.load_retry_interval_micros,
        batching=load_batching(args.batching_parameters_file) if args.enable_batching else None,
        tls=load_tls(args.ssl_config_file),
        prometheus_paths=load_prometheus_paths(args.monitoring_config_file),
        grpc_max_threads=args.grpc_max_threads,
        grpc_options=parse_channel_arguments(args.grpc_channel_arguments),
        enable_model_warmup=args.enable_model_warmup,
        num_request_iterations_for_warmup=args.num_request_iterations_for_warmup,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
        drain_grace_seconds=args.drain_grace_seconds,
        max_request_batch_size=args.max_request_batch_size,
        grpc_server_mode=args.grpc_server_mode,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `scann-serve`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(
            f"scann-serve {version('scann-serving-server')} (tensorflow {version('tensorflow')}, "
            f"scann {version('scann')})"
        )
        return 0
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s scann-serve: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    _configure_tensorflow(args)
    from scann_serving.server._app import serve

    code = serve(config)
    # Everything is stopped and drained here. Skip the interpreter's teardown: destroying
    # TensorFlow/ScaNN's native thread pools at exit can abort the process (exit 134,
    # "terminate called ... FATAL: exception not rethrown"), turning a clean drain into a crash.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _configure_tensorflow(args: argparse.Namespace) -> None:
    from scann_serving.client._quiet_tf import start_tensorflow

    tf = start_tensorflow()  # no "failed call to cuInit" ERROR line on a machine without GPU

    intra = args.tensorflow_intra_op_parallelism or args.tensorflow_session_parallelism
    inter = args.tensorflow_inter_op_parallelism or args.tensorflow_session_parallelism
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


if __name__ == "__main__":
    sys.exit(main())
