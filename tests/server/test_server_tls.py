"""TLS/mTLS from --ssl_config_file (TF Serving's SSLConfig with PEM contents): plaintext,
missing and untrusted client certificates are refused; a valid one works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pki_helpers import authority
from serve_helpers import GRPC_SERVER_MODES, ServerProcess, predict_request
from tensorflow_serving.apis import prediction_service_pb2_grpc

MODEL = "retrieval"


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    ca = authority("test-ca")
    server = ca.issue("localhost", server=True)
    client = ca.issue("client", server=False)
    rogue = authority("rogue-ca").issue("rogue", server=False)
    return {
        "ca": ca.identity.cert,
        "server_cert": server.cert,
        "server_key": server.key,
        "client_cert": client.cert,
        "client_key": client.key,
        "rogue_cert": rogue.cert,
        "rogue_key": rogue.key,
    }


@pytest.fixture(scope="module", params=GRPC_SERVER_MODES)
def tls_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_base: Path,
    pki: dict[str, bytes],
) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("tls") / "ssl.config"

    def text(
        pem: bytes,
    ) -> str:  # a text-proto string: newlines escaped, as TF Serving users write it
        return '"' + pem.decode().replace("\n", "\\n") + '"'

    config.write_text(
        f"server_key: {text(pki['server_key'])}\n"
        f"server_cert: {text(pki['server_cert'])}\n"
        f"custom_ca: {text(pki['ca'])}\n"
        "client_verify: true\n"
    )
    server = ServerProcess(
        f"--ssl_config_file={config}",
        f"--grpc_server_mode={request.param}",
        model_name=MODEL,
        model_base_path=tiny_model_base,
        rest=False,
    )
    server.start(credentials=_credentials(pki, "client"))
    yield server
    server.stop()


def _credentials(pki: dict[str, bytes], who: str | None) -> Any:
    if who is None:
        return grpc.ssl_channel_credentials(root_certificates=pki["ca"])
    return grpc.ssl_channel_credentials(
        root_certificates=pki["ca"],
        private_key=pki[f"{who}_key"],
        certificate_chain=pki[f"{who}_cert"],
    )


def _predict(channel: Any) -> int:
    request = predict_request(MODEL, ["1"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return int(stub.Predict(request, timeout=5).model_spec.version.value)


def test_valid_client_certificate_works(tls_server: ServerProcess, pki: dict[str, bytes]) -> None:
    with tls_server.channel(credentials=_credentials(pki, "client")) as channel:
        assert _predict(channel) == 1


@pytest.mark.parametrize(
    "who", ["plaintext", "no client certificate", "untrusted client certificate"]
)
def test_refused(tls_server: ServerProcess, pki: dict[str, bytes], who: str) -> None:
    if who == "plaintext":
        channel = tls_server.channel()
    else:
        channel = tls_server.channel(
            credentials=_credentials(pki, None if who.startswith("no") else "rogue")
        )
    with channel, pytest.raises(grpc.RpcError) as info:
        _predict(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
