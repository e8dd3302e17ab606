"""The suite's own guards (tests/_suite_guard.py): a failing test that leaves client threads
and a child process running ends the run at once with a non-zero exit, never a hang.

`test_deliberate_failure_with_running_clients` is the failure itself. It only runs when
SCANN_TEST_DELIBERATE_FAILURE=1 is set, e.g.

    SCANN_TEST_DELIBERATE_FAILURE=1 make test

which must end with a non-zero exit shortly after that test fails. The other test runs it in
a pytest subprocess on every `make test` and checks exactly that.
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
#: How long the subprocess run may take before it counts as hung (it needs a few seconds).
HANG_SECONDS = 120


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
    tests = Path(__file__).resolve().parent
    env = {**os.environ, OPT_IN: "1"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--rootdir={tests.parent}",
        f"{Path(__file__)}::test_deliberate_failure_with_running_clients",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=HANG_SECONDS, env=env, cwd=tmp_path
    )
    output = done.stdout + done.stderr
    assert done.returncode not in (0, 5), output[-3000:]
    assert "deliberate failure" in output, output[-3000:]
    assert re.search(r"threads still running after the test", output), output[-3000:]
    assert "child processes still running after the test (killed)" in output, output[-3000:]
    assert re.search(r"1 failed", output), output[-3000:]
