"""Start and stop a real `scann-serve` subprocess in tests (shared by every test folder).

    from serve_helpers import ServerProcess

    with ServerProcess(model_name="retrieval", model_base_path=base) as server:
        stub = PredictionServiceStub(server.channel())   # grpc to 127.0.0.1:server.grpc_port
        requests.get(f"{server.rest_url}/v1/models/retrieval")

`ServerProcess(*extra_flags, model_name=..., model_base_path=...)` picks free loopback ports,
`start()` launches the server and waits until grpc.health.v1 reports SERVING (every model
has a warmed version), `stop()` sends SIGTERM and returns the exit code, `logs` holds the
server's combined stdout/stderr. Pass `wait=False` to `start()` to inspect a server that
is not (yet) serving, and `credentials=` when the server uses TLS.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from scann_serving.server._config import GRPC_SERVER_MODES as SERVER_GRPC_MODES

__all__ = [
    "ERROR_LINE",
    "GRPC_SERVER_MODES",
    "ServerProcess",
    "console_script",
    "free_port",
    "predict_request",
    "run_command",
    "scann_serve_command",
    "string_tensor",
]

DEFAULT = "serving_default"

#: A native ERROR line from TensorFlow ("... E external/.../x.cc:51] ...") or Python logging.
ERROR_LINE = re.compile(r"(^|\s)E\d{0,4} [\w./-]+\.cc:\d+\]|\bERROR\b")

START_TIMEOUT_SECONDS = 90.0

#: scann-serve's --grpc_server_mode values (the server's own definition); tests on shared
#: servers run under each.
GRPC_SERVER_MODES: tuple[str, ...] = SERVER_GRPC_MODES


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def string_tensor(values: Iterable[bytes | str]) -> Any:
    """A DT_STRING TensorProto `[batch]` of raw query keys (str is sent as UTF-8)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    items = [v.encode() if isinstance(v, str) else v for v in values]
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(items))]
        ),
        string_val=items,
    )


def predict_request(
    model: str,
    queries: Iterable[bytes | str] | None = None,
    *,
    signature: str | None = None,
    k: int | np.integer | np.ndarray | None = None,
    version: int | None = None,
    **inputs: Any,
) -> Any:
    """The tests' one official `tensorflow.serving.PredictRequest` builder.

    Args:
        model: model_spec.name.
        queries: Raw query keys, sent as the string input `query` `[batch]`.
        signature: model_spec.signature_name; default `retrieve` when `k` is given, else
            `serving_default`.
        k: The scalar input `k` (a python int as int32; a numpy value keeps its dtype).
        version: model_spec.version (none: the latest).
        **inputs: Any other inputs: TensorProtos as they are, numpy/python values through
            `tf.make_tensor_proto`.
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature or ("retrieve" if k is not None else DEFAULT)
    if version is not None:
        request.model_spec.version.value = version
    if queries is not None:
        request.inputs["query"].CopyFrom(string_tensor(queries))
    if k is not None:  # a python int is sent as the signature's int32; numpy keeps its dtype
        value = k if isinstance(k, np.ndarray | np.generic) else np.int32(k)
        request.inputs["k"].CopyFrom(tf.make_tensor_proto(value))
    for key, value in inputs.items():
        tensor = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        request.inputs[key].CopyFrom(tensor)
    return request


#: The environment every command and server the tests start runs with.
TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}


def console_script(name: str) -> str:
    """The installed console script `name` (scann-export, scann-query, ...) of this venv."""
    script = Path(sys.executable).with_name(name)
    assert script.exists(), f"{script} is missing: install the workspace (make install)"
    return str(script)


def run_command(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion (UTF-8 text out, TF_ENV plus `env` in); never raises on
    a non-zero exit, so tests can assert on the code and the output."""
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env={**os.environ, **TF_ENV, **(env or {})},
    )


def scann_serve_command() -> list[str]:
    """The `scann-serve` executable of this environment (or `python -m` as a fallback)."""
    script = Path(sys.executable).with_name("scann-serve")
    if script.exists():
        return [str(script)]
    found = shutil.which("scann-serve")
    return [found] if found else [sys.executable, "-m", "scann_serving.server._cli"]


class ServerProcess:
    """A `scann-serve` subprocess on loopback ports chosen free.

    Args:
        *flags: Extra flags, e.g. "--enable_batching", "--file_system_poll_wait_seconds=1".
        model_name: --model_name (omit when passing --model_config_file in `flags`).
        model_base_path: --model_base_path.
        rest: Also serve REST on a free port (`rest_url`).
        env: Extra environment variables.
        command: Another `scann-serve` to run (e.g. one installed in a throwaway venv).

    Attributes:
        grpc_port, rest_port: The ports (rest_port is None without REST).
        target: "127.0.0.1:<grpc_port>" for grpc channels.
        rest_url: "http://127.0.0.1:<rest_port>".
    """

    def __init__(
        self,
        *flags: str,
        model_name: str | None = None,
        model_base_path: str | os.PathLike[str] | None = None,
        rest: bool = True,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.command = command or scann_serve_command()
        self.grpc_port = free_port()
        self.rest_port = free_port() if rest else None
        self.target = f"127.0.0.1:{self.grpc_port}"
        self.rest_url = f"http://127.0.0.1:{self.rest_port}" if rest else ""
        #: The backend the test expects to run the model ("native", "tensorflow"; fixtures set it).
        self.backend = ""
        args = [f"--port={self.grpc_port}"]
        if rest:
            args.append(f"--rest_api_port={self.rest_port}")
        if model_name is not None:
            args.append(f"--model_name={model_name}")
        if model_base_path is not None:
            args.append(f"--model_base_path={model_base_path}")
        # SCANN_TEST_GRPC_SERVER_MODE=asyncio runs every server a test starts in that mode
        # (e.g. `SCANN_TEST_GRPC_SERVER_MODE=asyncio make soak`) unless the test chose one.
        mode = os.environ.get("SCANN_TEST_GRPC_SERVER_MODE")
        if mode and not any(f.startswith("--grpc_server_mode") for f in flags):
            args.append(f"--grpc_server_mode={mode}")
        self.args = [*args, *flags]
        self.env = {**os.environ, **TF_ENV, **(env or {})}
        self._log_dir = tempfile.mkdtemp(prefix="scann-serve-")
        self.log_path = Path(self._log_dir) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------------
    def start(
        self, *, wait: bool = True, timeout: float = START_TIMEOUT_SECONDS, credentials: Any = None
    ) -> ServerProcess:
        """Launches the server; with `wait`, returns once health is SERVING (else raises)."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*self.command, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        if wait:
            try:
                self.wait_serving(timeout=timeout, credentials=credentials)
            except BaseException:
                self.kill()  # a server that never became ready must not outlive the test
                raise
        return self

    def wait_serving(
        self, *, timeout: float = START_TIMEOUT_SECONDS, credentials: Any = None
    ) -> None:
        """Blocks until grpc.health.v1 Check("") answers SERVING; RuntimeError with the logs if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"scann-serve exited with {self.process.returncode}:\n{self.logs}"
                )
            if self.health(credentials=credentials) == "SERVING":
                return
            time.sleep(0.2)
        raise RuntimeError(f"scann-serve not SERVING after {timeout:.0f}s:\n{self.logs}")

    def health(self, service: str = "", *, credentials: Any = None) -> str:
        """The health status name ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE"."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with self.channel(credentials=credentials) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1.0
                )
            except grpc.RpcError:
                return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait up to `timeout` (then SIGKILL); returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL (no drain)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- access ------------------------------------------------------------------------
    def channel(self, *, credentials: Any = None, options: Any = None) -> Any:
        """A new grpc channel to the server (secure when `credentials` is given)."""
        import grpc

        if credentials is not None:
            return grpc.secure_channel(self.target, credentials, options=options)
        return grpc.insecure_channel(self.target, options=options)

    @property
    def logs(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
