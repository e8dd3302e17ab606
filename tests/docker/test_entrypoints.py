"""The images' entrypoint scripts, run here with each image's ENV (read from its Dockerfile).

TF Serving cannot run here, so its generated command line is checked flag by flag against
tensorflow_model_server 2.20's flags. The export entrypoint's command line is checked
against `scann-export --help`. The CPU check runs against real and synthetic cpuinfo.
(The scann-serve entrypoint starting a real server: test_scann_serve_image.py.)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from _docker_support import (
    DOCKER_DIR,
    DOCKERFILES,
    entrypoint_argv,
    image_entrypoint,
    parse_dockerfile,
    tf_serving_argv_errors,
)

CHECK_CPU = DOCKER_DIR / "check_cpu.sh"
HASWELL_FLAGS = "fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt avx f16c avx2 bmi1 bmi2"


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\n\n")
    return path


def test_tf_serving_entrypoint_keeps_the_official_contract() -> None:
    script, env = image_entrypoint(DOCKERFILES["tf-serving"])
    argv = entrypoint_argv(script, env)
    assert argv == [
        "tensorflow_model_server",
        "--port=8500",
        "--rest_api_port=8501",
        "--model_name=model",
        "--model_base_path=/models/model",
    ]
    assert tf_serving_argv_errors(argv) == []


def test_tf_serving_entrypoint_forwards_env_and_extra_args_verbatim() -> None:
    script, env = image_entrypoint(DOCKERFILES["tf-serving"])
    extra = [
        "--grpc_channel_arguments=grpc.max_connection_age_ms=60000,grpc.keepalive_time_ms=30000",
        "--saved_model_tags=serve",
        "--model_config_file=/etc/configs with space/models.config",
        "--enable_batching",
    ]
    env = {**env, "MODEL_NAME": "retrieval", "MODEL_BASE_PATH": "/mnt/models"}
    argv = entrypoint_argv(script, env, extra)
    assert argv[3:5] == ["--model_name=retrieval", "--model_base_path=/mnt/models/retrieval"]
    assert argv[5:] == extra
    assert tf_serving_argv_errors(argv) == []


def test_flag_checker_catches_what_tensorflow_model_server_would_ignore() -> None:
    """The check is not vacuous: typos, separate values and bad types are reported."""
    errors = tf_serving_argv_errors(
        ["tensorflow_model_server", "--port", "8500", "--enable_batchin", "--rest_api_port=x"]
    )
    assert len(errors) == 4, errors


@pytest.mark.parametrize("image", ["tf-serving", "scann-serve", "export"])
def test_image_puts_check_cpu_next_to_its_entrypoint(image: str) -> None:
    """The entrypoints run check_cpu.sh from their own directory, here and in the image."""
    _, stages = parse_dockerfile(DOCKERFILES[image])
    final = stages[-1]
    entry_dir = os.path.dirname(final.entrypoint[2])
    targets = {tokens[-1]: tokens[-2] for tokens in final.copies}
    assert targets.get(f"{entry_dir}/check_cpu.sh") == "docker/check_cpu.sh"


def test_entrypoint_refuses_a_cpu_without_avx2_and_says_so(tmp_path: Path) -> None:
    script, env = image_entrypoint(DOCKERFILES["scann-serve"])
    cpuinfo = _cpuinfo(tmp_path, HASWELL_FLAGS.replace(" avx2", "").replace(" fma", ""))
    proc = subprocess.run(
        [str(script)],
        env={
            **os.environ,
            **env,
            "SCANN_CPUINFO": str(cpuinfo),
            "SCANN_CPU_ARCH": "x86_64",
            "ENTRYPOINT_DRY_RUN": "1",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 78
    assert proc.stdout == "", "the server must not be started"
    assert "does not support avx2 fma" in proc.stderr
    assert "Illegal instruction" in proc.stderr and "SCANN_SKIP_CPU_CHECK" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "arch", "extra_env", "code"),
    [
        (HASWELL_FLAGS, "x86_64", {}, 0),
        (HASWELL_FLAGS.replace(" fma", ""), "x86_64", {}, 78),
        ("fp asimd", "aarch64", {}, 0),  # not x86: AVX2 does not apply
        ("fpu sse sse2", "x86_64", {"SCANN_SKIP_CPU_CHECK": "1"}, 0),
    ],
)
def test_check_cpu(
    tmp_path: Path, flags: str, arch: str, extra_env: dict[str, str], code: int
) -> None:
    env = {**os.environ, "SCANN_CPUINFO": str(_cpuinfo(tmp_path, flags)), "SCANN_CPU_ARCH": arch}
    proc = subprocess.run(
        [str(CHECK_CPU)], env={**env, **extra_env}, capture_output=True, timeout=30
    )
    assert proc.returncode == code, proc.stderr


def test_check_cpu_passes_on_this_machine() -> None:
    """ScaNN runs here, so the real /proc/cpuinfo must pass (no false alarms)."""
    if os.uname().machine != "x86_64":
        pytest.skip("the AVX2/FMA check only applies to x86_64")
    proc = subprocess.run([str(CHECK_CPU)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_export_entrypoint_writes_under_the_model_base_path() -> None:
    script, env = image_entrypoint(DOCKERFILES["export"])
    env = {**env, "MODEL_NAME": "retrieval", "MODEL_BASE_PATH": "/models"}
    argv = entrypoint_argv(script, env, ["--dataset", "synthetic"])
    assert argv == [
        "scann-export",
        "--output",
        "/models/retrieval",
        "--model-name",
        "retrieval",
        "--dataset",
        "synthetic",
    ]


def test_export_entrypoint_options_exist_in_scann_export(scann_export_help: str) -> None:
    script, env = image_entrypoint(DOCKERFILES["export"])
    argv = entrypoint_argv(script, env, ["--dataset", "synthetic"])
    for option in (a for a in argv[1:] if a.startswith("--")):
        assert option in scann_export_help, f"scann-export has no {option}"


def test_export_entrypoint_explains_a_missing_volume(tmp_path: Path) -> None:
    script, env = image_entrypoint(DOCKERFILES["export"])
    missing = tmp_path / "not-mounted"
    proc = subprocess.run(
        [str(script)],
        env={**os.environ, **env, "MODEL_BASE_PATH": str(missing), "EXPORT_BINARY": "false"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 64
    assert f"MODEL_BASE_PATH={missing} does not exist" in proc.stderr
    assert "docker run -v" in proc.stderr
