"""`scann-serve`: command-line flags with tensorflow_model_server's names and meanings.

The flags are generated from the config's dataclass fields (`_config.flag`) plus
`SourceFlags`, the flags that are read into other values (config files, the single model)
rather than passed on; each flag and its default is defined once. Flags are parsed in
`main()` into one frozen `ServerConfig`; config files are read and checked before
anything starts, and a bad flag or file exits 2 with a message naming it. Flags beyond
TF Serving's: --drain_grace_seconds, --max_request_batch_size, --grpc_server_mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import typing
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from scann_serving.server._config import (
    FLAG,
    ConfigError,
    FlagSpec,
    GrpcConfig,
    ModelsConfig,
    RestConfig,
    ServerConfig,
    TensorFlowConfig,
    flag,
    load_batching,
    load_model_server_config,
    load_prometheus_paths,
    load_tls,
    parse_channel_arguments,
    single_model_config,
)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class SourceFlags:
    """Flags read into other config values (or accepted for compatibility only)."""

    model_name: str = flag("default", "Name of the model (ignored with --model_config_file)")
    model_base_path: str = flag("", "Path holding the model's numeric version directories")
    enable_batching: bool = flag(False, "Enable inter-request batching")
    batching_parameters_file: str = flag(
        "", "BatchingParameters text proto (needs --enable_batching)"
    )
    ssl_config_file: str = flag("", "SSLConfig text proto for gRPC TLS/mTLS")
    monitoring_config_file: str = flag("", "MonitoringConfig text proto (Prometheus path)")
    grpc_channel_arguments: str = flag("", "Comma-separated gRPC server arguments, key=value")
    saved_model_tags: str = flag("serve", "Accepted for compatibility (SavedModel tag 'serve')")
    allow_version_labels_for_unavailable_models: bool = flag(False, "Accepted for compatibility")


#: (--help heading, class whose `flag()` fields are flags), in --help order.
FLAG_SECTIONS: tuple[tuple[str, type], ...] = (
    ("models and config files", SourceFlags),
    ("server", ServerConfig),
    ("gRPC", GrpcConfig),
    ("HTTP/REST", RestConfig),
    ("version loading", ModelsConfig),
    ("TensorFlow", TensorFlowConfig),
)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "t"):
        return True
    if lowered in ("0", "false", "no", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _flags(cls: type) -> Iterator[tuple[dataclasses.Field[Any], FlagSpec, Any]]:
    """(field, its FlagSpec, its type) for each field of `cls` that is a flag."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        spec = item.metadata.get(FLAG)
        if spec is not None:
            yield item, spec, hints[item.name]


def _default(item: dataclasses.Field[Any]) -> Any:
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (TF Serving's flag names, `--flag=value` or `--flag value`)."""
    p = argparse.ArgumentParser(
        prog="scann-serve",
        description="A ScaNN-enabled model server speaking TensorFlow Serving's gRPC and REST API.",
        allow_abbrev=False,
    )
    for title, section in FLAG_SECTIONS:
        group = p.add_argument_group(title)
        for item, spec, kind in _flags(section):
            name, default = f"--{spec.name or item.name}", _default(item)
            if kind is bool:
                group.add_argument(
                    name, type=_bool, nargs="?", const=True, default=default, help=spec.help
                )
            elif spec.choices:
                group.add_argument(name, choices=spec.choices, default=default, help=spec.help)
            else:
                group.add_argument(name, type=kind, default=default, help=spec.help)
    p.add_argument("--version", action="store_true", help="Display version")
    return p


def _values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    return {item.name: getattr(args, spec.name or item.name) for item, spec, _ in _flags(cls)}


def _section(cls: type[T], args: argparse.Namespace, **derived: Any) -> T:
    """An instance of a config class from its flags plus the values read from files."""
    return cls(**_values(cls, args), **derived)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Turns parsed flags into the frozen ServerConfig (reading and checking config files)."""
    source = _section(SourceFlags, args)
    top = _values(ServerConfig, args)
    if top["model_config_file"]:
        model_config = load_model_server_config(top["model_config_file"])
    elif source.model_base_path:
        model_config = single_model_config(source.model_name, source.model_base_path)
    else:
        raise ConfigError("give --model_base_path (with --model_name) or --model_config_file")
    if source.batching_parameters_file and not source.enable_batching:
        raise ConfigError("You supplied --batching_parameters_file without --enable_batching")
    grpc, rest = _section(GrpcConfig, args), _section(RestConfig, args)
    models = _section(ModelsConfig, args, model_config=model_config)
    if rest.port and rest.port == grpc.port:
        raise ConfigError("--rest_api_port cannot be same as --port; use a different port")
    for name, port in (("port", grpc.port), ("rest_api_port", rest.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"--{name}={port} is not a port number")
    if top["drain_grace_seconds"] < 0 or models.max_request_batch_size < 1 or grpc.max_threads < 1:
        raise ConfigError(
            "--drain_grace_seconds must be >= 0, --max_request_batch_size and --grpc_max_threads >= 1"
        )
    batching = load_batching(source.batching_parameters_file) if source.enable_batching else None
    tls = load_tls(source.ssl_config_file)
    prometheus_paths = load_prometheus_paths(source.monitoring_config_file)
    options = parse_channel_arguments(source.grpc_channel_arguments)
    return ServerConfig(
        grpc=dataclasses.replace(grpc, options=options, tls=tls),
        rest=dataclasses.replace(rest, prometheus_paths=prometheus_paths),
        models=models,
        batching=batching,
        tensorflow=_section(TensorFlowConfig, args),
        **top,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `scann-serve`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        from scann_serving.server._preflight import installed_versions

        # TensorFlow is the optional `[tensorflow]` extra: "none" when only native is installed.
        tensorflow = installed_versions()["tensorflow"] or "none"
        print(
            f"scann-serve {version('scann-serving-server')} (tensorflow {tensorflow}, "
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
    from scann_serving.server._app import serve

    code = serve(config)
    # Everything is stopped and drained here. Skip the interpreter's teardown: destroying
    # TensorFlow/ScaNN's native thread pools at exit can abort the process (exit 134,
    # "terminate called ... FATAL: exception not rethrown"), turning a clean drain into a crash.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
