"""The public surface, the one error→status table, the flags and their defaults, and TF
Serving's config text protos."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import grpc
import pytest
import scann_serving.server as server
from scann_serving.server import _errors
from scann_serving.server._config import (
    DEFAULT_PROMETHEUS_PATH,
    ConfigError,
    ModelsConfig,
    ServerConfig,
    load_batching,
    load_model_server_config,
    load_prometheus_paths,
    load_tls,
    parse_channel_arguments,
)


def test_all_is_the_public_surface() -> None:
    assert sorted(server.__all__) == sorted(set(server.__all__))
    for name in server.__all__:
        assert hasattr(server, name), name


def test_every_domain_error_maps_to_a_grpc_and_http_status() -> None:
    classes = [
        c
        for c in vars(_errors).values()
        if isinstance(c, type) and issubclass(c, _errors.ServingError)
    ]
    assert len(classes) >= 9
    for cls in classes:
        code, http, message = _errors.status_for(cls("boom"))
        assert grpc.StatusCode[code].name == code
        assert http == _errors.HTTP_STATUS_BY_CODE[code] and message == "boom"
    assert _errors.status_for(ValueError("x"))[:2] == ("INTERNAL", 500)
    assert {c.name: c.value[0] for c in grpc.StatusCode} == _errors.NUMERIC_CODE


def test_batching_parameters_as_tf_serving_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "batching.config"
    path.write_text(
        "max_batch_size { value: 128 }\nbatch_timeout_micros { value: 500 }\n"
        "max_enqueued_batches { value: 7 }\nnum_batch_threads { value: 3 }\n"
        'thread_pool_name { value: "t" }\nallowed_batch_sizes: 64\nallowed_batch_sizes: 128\n'
        "pad_variable_length_inputs: true\n"
    )
    config = load_batching(str(path))
    assert (config.max_batch_size, config.batch_timeout_micros) == (128, 500)
    assert (config.max_enqueued_batches, config.num_batch_threads) == (7, 3)
    path.write_text("max_batch_size { value: 0 }")
    with pytest.raises(ConfigError, match="max_batch_size must be >= 1"):
        load_batching(str(path))


def test_monitoring_ssl_and_model_configs(tmp_path: Path) -> None:
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/metrics" }')
    assert load_prometheus_paths(str(monitoring)) == (DEFAULT_PROMETHEUS_PATH, "/metrics")
    ssl = tmp_path / "ssl.config"
    ssl.write_text('server_key: "K"\nserver_cert: "C"\ncustom_ca: "A"\nclient_verify: true\n')
    tls = load_tls(str(ssl))
    assert tls is not None and tls.client_verify and tls.custom_ca == b"A"
    models = tmp_path / "models.config"
    models.write_text(
        'model_config_list { config { name: "a" base_path: "/m/a" model_platform: "tensorflow" '
        "model_version_policy { latest { num_versions: 2 } } } "
        'config { name: "a" base_path: "/m/b" } }'
    )
    with pytest.raises(ConfigError, match="appears twice"):
        load_model_server_config(str(models))


def test_channel_arguments() -> None:
    assert parse_channel_arguments("grpc.max_receive_message_length=10,grpc.x=y") == (
        ("grpc.max_receive_message_length", 10),
        ("grpc.x", "y"),
    )
    with pytest.raises(ConfigError):
        parse_channel_arguments("novalue")


def test_flags_keep_tensorflow_model_servers_names_and_defaults() -> None:
    threads = 4 * (os.cpu_count() or 1)
    assert vars(server.build_parser().parse_args([])) == {
        "port": 8500,
        "rest_api_port": 0,
        "rest_api_num_threads": threads,
        "rest_api_timeout_in_ms": 30_000,
        "model_name": "default",
        "model_base_path": "",
        "model_config_file": "",
        "model_config_file_poll_wait_seconds": 0,
        "file_system_poll_wait_seconds": 1,
        "max_num_load_retries": 5,
        "load_retry_interval_micros": 60_000_000,
        "enable_batching": False,
        "batching_parameters_file": "",
        "monitoring_config_file": "",
        "ssl_config_file": "",
        "grpc_max_threads": threads,
        "grpc_channel_arguments": "",
        "enable_model_warmup": True,
        "num_request_iterations_for_warmup": 1,
        "tensorflow_session_parallelism": 0,
        "tensorflow_intra_op_parallelism": 0,
        "tensorflow_inter_op_parallelism": 0,
        "saved_model_tags": "serve",
        "allow_version_labels_for_unavailable_models": False,
        "drain_grace_seconds": 10.0,
        "max_request_batch_size": 10_000,
        "grpc_server_mode": "threads",
        "backend": "auto",
        "version": False,
    }


def test_flag_defaults_are_the_config_defaults() -> None:
    args = server.build_parser().parse_args(["--model_base_path=/m", "--enable_model_warmup"])
    config = server.config_from_args(args)
    models = ModelsConfig(model_config=config.models.model_config)
    assert config == dataclasses.replace(ServerConfig(), models=models)
    args = server.build_parser().parse_args(["--model_base_path=/m", "--grpc_max_threads=3"])
    assert server.config_from_args(args).grpc.max_threads == 3
