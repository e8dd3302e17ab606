"""The suite's own guards (tests/_suite_guard.py): a failing test that leaves client threads
and a child process running ends the run at once with a non-zero exit, never a hang.

`test_deliberate_failure_with_running_clients` is the failure itself. It only runs when
SCANN_TEST_DELIBERATE_FAILURE=1 is set, e.g.

    SCANN_TEST_DELIBERATE_FAILURE=1 make test

which must end with a non-zero exit shortly after that test fails. The other test runs it in
a pytest subprocess on every `make test` and checks exactly that. Likewise
`test_deliberate_hang` (SCANN_TEST_DELIBERATE_HANG=1) blocks, and a subprocess run of it with
a 3 s SCANN_TEST_RUN_CAP_SECONDS must end with exit 124 and every thread's stack.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

OPT_IN = "SCANN_TEST_DELIBERATE_FAILURE"
HANG_OPT_IN = "SCANN_TEST_DELIBERATE_HANG"
#: How long the subprocess run may take before it counts as hung (it needs a few seconds).
HANG_SECONDS = 120


def _run_opt_in(test: str, cwd: Path, **env: str) -> tuple[int, str]:
    """Runs one opt-in test of this file in a pytest subprocess: (exit code, its output)."""
    tests = Path(__file__).resolve().parent
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--rootdir={tests.parent}",
        f"{Path(__file__)}::{test}",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
        env={**os.environ, **env},
        cwd=cwd,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.skipif(os.environ.get(OPT_IN) != "1", reason=f"opt in with {OPT_IN}=1")
def test_deliberate_failure_with_running_clients() -> None:
    """Starts what the old SIGTERM test started (client threads that loop until told to stop,
    and a child process), then fails before stopping any of it."""
    import grpc

    method = "/tensorflow.serving.PredictionService/Predict"
    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {"Predict": grpc.unary_unary_rpc_method_handler(lambda request, context: b"")},
    )
    server = grpc.server(ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            predict = channel.unary_unary(method)
            while not stop.wait(0.01):  # `stop` is never set: the test fails first
                predict(b"", timeout=5)

    for number in range(4):
        # Not daemon threads, exactly like the loops that used to keep pytest alive.
        threading.Thread(target=client, name=f"deliberate-client-{number}").start()
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    assert server is not None
    raise AssertionError(f"deliberate failure ({OPT_IN}=1): clients and a child left running")


def test_a_failing_test_with_running_clients_ends_the_run(tmp_path: Path) -> None:
    code, output = _run_opt_in(
        "test_deliberate_failure_with_running_clients", tmp_path, **{OPT_IN: "1"}
    )
    assert code not in (0, 5), output[-3000:]
    assert "deliberate failure" in output, output[-3000:]
    assert re.search(r"threads still running after the test", output), output[-3000:]
    assert "child processes still running after the test (killed)" in output, output[-3000:]
    assert re.search(r"1 failed", output), output[-3000:]


@pytest.mark.skipif(os.environ.get(HANG_OPT_IN) != "1", reason=f"opt in with {HANG_OPT_IN}=1")
def test_deliberate_hang() -> None:
    """Blocks far longer than the run cap the subprocess below sets."""
    assert not threading.Event().wait(600)


def test_a_run_past_its_cap_ends_with_the_stacks(tmp_path: Path) -> None:
    env = {HANG_OPT_IN: "1", "SCANN_TEST_RUN_CAP_SECONDS": "3"}
    code, output = _run_opt_in("test_deliberate_hang", tmp_path, **env)
    assert code == 124, output[-3000:]
    assert "the run took longer than 3s" in output, output[-3000:]
    assert "test_deliberate_hang" in output, output[-3000:]  # the stack shows where it hung
