"""The REST adapter: TF Serving's HTTP/JSON API and the Prometheus metrics page.

URLs (as tensorflow_model_server): `GET /v1/models/NAME[/versions/N|/labels/L]` (status),
`GET .../metadata`, `POST ...:predict` (also `:classify`/`:regress`, answered as TF Serving
does for predict signatures). Errors are `{"error": "..."}` with TF Serving's HTTP codes.
This module routes HTTP; the JSON formats are `_json`'s, the status proto `_wire`'s. A
predict resolves its version once (`ServingCore.resolve`), decodes the JSON with that
version's input dtypes and runs on that same version.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from scann_serving.server._config import RestConfig
from scann_serving.server._core import (
    METADATA_FIELDS,
    METHOD_CLASSIFY,
    METHOD_REGRESS,
    ModelRef,
    PredictCall,
    ServingCore,
)
from scann_serving.server._errors import InvalidArgument, NotFound, status_for
from scann_serving.server._json import metadata_body, parse_body, predict_body, request_inputs
from scann_serving.server._manager import VersionRecord
from scann_serving.server._metrics import Metrics
from scann_serving.server._wire import status_response

log = logging.getLogger("scann_serving.server")

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<meta>/metadata)|:(?P<verb>predict|classify|regress))?/?$"
)


def _status_body(records: list[VersionRecord]) -> Any:
    """GET /v1/models/NAME: the GetModelStatusResponse as TF Serving's REST JSON."""
    return json_format.MessageToDict(
        status_response(records),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def _ref(match: re.Match[str]) -> ModelRef:
    version = match["version"]
    if version is not None and not version.isdigit():
        raise InvalidArgument(f"version {version!r} in the URL is not a non-negative integer")
    return ModelRef(match["name"], int(version) if version else None, match["label"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RestServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one segment; without NODELAY, Nagle + delayed ACK
        # add ~40 ms to every keep-alive response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # requests are counted in metrics
        log.debug("rest: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if method == "GET" and path in self.server.metric_paths:
            self._send(200, self.server.metrics.render().encode(), "text/plain; version=0.0.4")
            return
        try:
            with self.server.slots:  # at most --rest_api_num_threads requests run at once
                status, payload = self._route(method, path, self._body())
        except Exception as exc:
            _, status, message = status_for(exc)
            payload = {"error": message}
        # UTF-8 as is (TF Serving's writer does the same), not \u escapes that make CJK
        # identifiers three times longer. Output strings come from strict UTF-8 decoding (or
        # are {"b64"} objects); backslashreplace only keeps a stray surrogate from elsewhere
        # (a hand-edited manifest) a valid JSON escape instead of an error.
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8", "backslashreplace")
        self._send(status, body, "application/json")

    def _body(self) -> bytes:
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit():
            self.close_connection = True
            raise InvalidArgument(f"Content-Length {raw!r} is not a byte count")
        length = int(raw)
        return self.rfile.read(length) if length else b""

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        match = _PATH.match(path)
        if match is None:
            raise NotFound(
                f"Malformed request: {method} {path}; use /v1/models/NAME[:predict|/metadata]"
            )
        ref, core = _ref(match), self.server.core
        verb = match["verb"]
        if method == "POST" and verb == "predict":
            return 200, self._predict(ref, body)
        if method == "POST" and verb in ("classify", "regress"):
            kind, expected = (
                ("classification", METHOD_CLASSIFY)
                if verb == "classify"
                else ("regression", METHOD_REGRESS)
            )
            core.check_method(ref, parse_body(body).get("signature_name", ""), expected, kind)
        if method == "GET" and verb is None and match["meta"]:
            return 200, metadata_body(core.metadata(ref, list(METADATA_FIELDS)))
        if method == "GET" and verb is None:
            return 200, _status_body(core.status(ref))
        raise InvalidArgument(f"Malformed request: {method} {path}")

    def _predict(self, ref: ModelRef, body: bytes) -> Any:
        data = parse_body(body)
        signature = data.get("signature_name", "")
        if not isinstance(signature, str):
            raise InvalidArgument('"signature_name" must be a string')
        core = self.server.core
        # One lookup: the version whose input dtypes decode the JSON is the one that runs it.
        version = core.resolve(ref)
        inputs, row_format = request_inputs(data, version.signature(signature).inputs)
        timeout = self.server.config.timeout_in_ms / 1000
        call = PredictCall(ref, signature, inputs, deadline=time.monotonic() + timeout, api="rest")
        return predict_body(core.predict(call, version).outputs, row_format)

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _RestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of new keep-alive clients (16 at
    # once in the benchmark) overflowed it and connections were reset.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, config: RestConfig, core: ServingCore, metrics: Metrics) -> None:
        super().__init__(("0.0.0.0", config.port), _Handler)
        self.config, self.core, self.metrics = config, core, metrics
        self.metric_paths = set(config.prometheus_paths)
        self.slots = threading.BoundedSemaphore(max(1, config.num_threads))


class RestServer:
    """The HTTP server on --rest_api_port, serving on a background thread."""

    def __init__(self, config: RestConfig, core: ServingCore, metrics: Metrics) -> None:
        self._server = _RestServer(config, core, metrics)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest", daemon=True)

    def start(self) -> None:
        """Starts serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stops accepting and closes the socket."""
        self._server.shutdown()
        self._server.server_close()
