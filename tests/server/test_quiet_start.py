"""First contact is quiet: no ERROR line from TensorFlow's CUDA probe on a machine without a
GPU, in scann-serve's log or from scann-export, while real errors still show."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scann_serving.client._quiet_tf import has_nvidia_device, keep_line
from serve_helpers import ERROR_LINE, ServerProcess

NOISE = "failed call to cuInit"
#: start_tensorflow() with a real error printed natively inside the captured window.
QUIET = """
import os, sys
import tensorflow as tf
from scann_serving.client._quiet_tf import start_tensorflow

listing = tf.config.list_physical_devices
def noisy(*args):
    os.write(2, b"E0000 fake.cc:1] a real native error\\n")
    return listing(*args)
tf.config.list_physical_devices = noisy
start_tensorflow()
sys.stderr.write("done\\n")
"""


def _stderr(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return done.stderr


def test_only_the_no_gpu_line_is_dropped() -> None:
    line = b"2026-12-03 10:42:37: E external/xla/cuda_platform.cc:51] failed call to cuInit: X\n"
    assert not keep_line(line, gpu_present=False)
    assert keep_line(line, gpu_present=True)  # with a GPU it is a real error
    assert keep_line(b"E0000 other.cc:1] failed to allocate memory\n", gpu_present=False)


@pytest.mark.skipif(has_nvidia_device(), reason="this machine has a GPU: nothing is filtered")
def test_start_tensorflow_hides_the_cuda_probe_and_keeps_other_errors() -> None:
    # Where the NVIDIA driver library exists without a GPU (CI here), TensorFlow's probe
    # prints NOISE during start_tensorflow(); elsewhere it prints nothing. Either way it must
    # not come through, while a real native error printed in the same window must.
    quiet = _stderr(QUIET)
    assert NOISE not in quiet, quiet
    assert "a real native error" in quiet and quiet.rstrip().endswith("done"), quiet


def test_server_log_has_no_error_line(tiny_server: ServerProcess) -> None:
    errors = [line for line in tiny_server.logs.splitlines() if ERROR_LINE.search(line)]
    assert not errors, errors
