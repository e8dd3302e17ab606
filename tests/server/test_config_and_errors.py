"""The public surface, the one error→status table, and TF Serving's config text protos."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import scann_serving.server as server
from scann_serving.server import _errors
from scann_serving.server._config import (
    DEFAULT_PROMETHEUS_PATH,
    ConfigError,
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
