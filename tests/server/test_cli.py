"""Flags with tensorflow_model_server's names; a bad flag or config file fails at start."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from serve_helpers import scann_serve_command


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*scann_serve_command(), *args], capture_output=True, text=True, timeout=60
    )


def test_unknown_flag_is_named(tmp_path: Path) -> None:
    result = run("--model_base_path", str(tmp_path), "--no_such_flag=1")
    assert result.returncode == 2
    assert "--no_such_flag" in result.stderr


@pytest.mark.parametrize(
    ("flag", "content", "named"),
    [
        (
            "--model_config_file",
            "model_config_list { config { name: 'x' base_path: ",
            "--model_config_file",
        ),
        (
            "--batching_parameters_file",
            "max_batch_size { value: 'many' }",
            "--batching_parameters_file",
        ),
        (
            "--monitoring_config_file",
            "prometheus_config { enabled: true }",
            "--monitoring_config_file",
        ),
        ("--ssl_config_file", "server_key: 'k'", "--ssl_config_file"),
    ],
)
def test_malformed_config_file_is_named(
    tmp_path: Path, flag: str, content: str, named: str
) -> None:
    path = tmp_path / "config.txt"
    path.write_text(content)
    extra = ["--enable_batching"] if flag == "--batching_parameters_file" else []
    result = run("--model_base_path", str(tmp_path), *extra, f"{flag}={path}")
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and str(path) in result.stderr


def test_missing_model_and_batching_file_without_batching(tmp_path: Path) -> None:
    result = run("--port=0")
    assert result.returncode == 2 and "--model_base_path" in result.stderr
    result = run("--model_base_path", str(tmp_path), f"--batching_parameters_file={tmp_path}")
    assert result.returncode == 2 and "--enable_batching" in result.stderr


def test_unknown_grpc_server_mode_is_named(tmp_path: Path) -> None:
    result = run("--model_base_path", str(tmp_path), "--grpc_server_mode=fibers")
    assert result.returncode == 2
    assert "--grpc_server_mode" in result.stderr and "asyncio" in result.stderr


def test_version_flag() -> None:
    result = run("--version")
    assert result.returncode == 0 and "scann" in result.stdout
