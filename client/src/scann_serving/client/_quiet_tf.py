"""First contact without a false alarm: start TensorFlow on a machine with no GPU quietly.

TensorFlow's Linux wheel probes CUDA the first time it lists devices. Where the NVIDIA
driver library is installed but no GPU is (cloud images, CI runners, laptops with the
driver but no card), that probe prints an ERROR line from native code:

    E ... cuda_platform.cc:51] failed call to cuInit: ... CUDA error ...

That line is harmless (TensorFlow then runs on the CPU) but reads as a failure. scann-export
and scann-serve call `start_tensorflow()` first: it imports TensorFlow and lets it list
devices with the process's native stderr (file descriptor 2) captured, then writes back
everything it captured except that one line. Every other line, errors included, still shows,
and on a machine with an NVIDIA device nothing is filtered.

This module lives in the TF-free client distribution only because all three packages share
it; the client never calls it, and importing it imports nothing heavy.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from typing import Any

#: Substrings of the native log lines that only mean "no GPU here".
NO_GPU_NOISE = (b"failed call to cuInit",)


def has_nvidia_device() -> bool:
    """True when the kernel exposes an NVIDIA GPU (/dev/nvidia0, /dev/nvidia1, ...)."""
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def keep_line(line: bytes, *, gpu_present: bool) -> bool:
    """Whether a captured stderr line is shown (only the no-GPU noise is dropped)."""
    return gpu_present or not any(noise in line for noise in NO_GPU_NOISE)


def start_tensorflow() -> Any:
    """Imports TensorFlow and initialises its devices; returns the `tensorflow` module."""
    gpu_present = has_nvidia_device()
    if gpu_present:
        import tensorflow as tf

        tf.config.list_physical_devices()
        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().splitlines(keepends=True)
                if keep_line(line, gpu_present=False)
            ]
            rest = b"".join(kept)
            while rest:
                rest = rest[os.write(2, rest) :]
    return tf
