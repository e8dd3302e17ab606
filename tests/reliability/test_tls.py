"""Promise 7 — TLS/mTLS: only clients with a certificate the server trusts get in.

The test makes two CAs: the trusted one signs the server's certificate and a client's;
a rogue one signs another client's. scann-serve runs with --ssl_config_file
(TF Serving's SSLConfig: server_key, server_cert, custom_ca, client_verify: true).
Refused: a plaintext channel, TLS without a client certificate, a client certificate from
the rogue CA (and a client that does not trust the server's CA). Accepted: the valid
client, through the official stubs and through the project's RetrievalClient.

Backend-independent (one server, `--backend=auto`, which serves the tiny model natively):
the handshake is gRPC's, done before any request reaches a backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from _rel_support import prediction_stub
from pki_helpers import Authority, Identity, authority
from serve_helpers import ServerProcess, predict_request

MODEL = "retrieval"


@dataclass(frozen=True)
class Pki:
    """The certificates of the TLS tests."""

    ca: Authority
    rogue: Authority
    server: Identity
    client: Identity
    rogue_client: Identity


@dataclass(frozen=True)
class TlsServer:
    """The mTLS server and its PKI."""

    process: ServerProcess
    pki: Pki


def _text(value: bytes) -> str:
    """A protobuf text-format string literal."""
    escaped = value.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _ssl_config(pki: Pki) -> str:
    """TF Serving's SSLConfig text proto (the file --ssl_config_file names)."""
    return (
        f"server_key: {_text(pki.server.key)}\n"
        f"server_cert: {_text(pki.server.cert)}\n"
        f"custom_ca: {_text(pki.ca.identity.cert)}\n"
        "client_verify: true\n"
    )


@pytest.fixture(scope="module")
def tls_server(
    tiny_model_base: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServer]:
    ca, rogue = authority("reliability trusted CA"), authority("reliability rogue CA")
    pki = Pki(
        ca,
        rogue,
        ca.issue("scann-serve", server=True),
        ca.issue("good client", server=False),
        rogue.issue("rogue client", server=False),
    )
    config = tmp_path_factory.mktemp("tls") / "ssl.config"
    config.write_text(_ssl_config(pki))
    process = ServerProcess(
        f"--ssl_config_file={config}", model_name=MODEL, model_base_path=tiny_model_base
    )
    process.start(credentials=_credentials(pki.ca.identity.cert, pki.client))
    try:
        yield TlsServer(process, pki)
    finally:
        process.stop()


def _credentials(root: bytes, client: Identity | None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=client.key, certificate_chain=client.cert
    )


def _predict(server: TlsServer, credentials: grpc.ChannelCredentials | None) -> str:
    with server.process.channel(credentials=credentials) as channel:
        try:
            reply = prediction_stub(channel).Predict(predict_request(MODEL, ["1"]), timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name
    assert reply.outputs["identifiers"].string_val
    return "OK"


def test_valid_client_certificate_is_accepted(tls_server: TlsServer) -> None:
    pki = tls_server.pki
    assert _predict(tls_server, _credentials(pki.ca.identity.cert, pki.client)) == "OK"


def test_retrieval_client_with_mtls_is_accepted(tls_server: TlsServer) -> None:
    from scann_serving.client import TLS, RetrievalClient

    pki = tls_server.pki
    tls = TLS(
        root_certificates=pki.ca.identity.cert,
        certificate_chain=pki.client.cert,
        private_key=pki.client.key,
    )
    with RetrievalClient(tls_server.process.target, model=MODEL, tls=tls, retry=None) as client:
        result = client.retrieve(["1", "2"], k=5)
    assert result.identifiers.shape == (2, 5)


@pytest.mark.parametrize(
    "case", ["plaintext", "no client certificate", "rogue client certificate", "untrusted server"]
)
def test_other_clients_are_refused(tls_server: TlsServer, case: str) -> None:
    pki = tls_server.pki
    credentials = {
        "plaintext": None,
        "no client certificate": _credentials(pki.ca.identity.cert, None),
        "rogue client certificate": _credentials(pki.ca.identity.cert, pki.rogue_client),
        "untrusted server": _credentials(pki.rogue.identity.cert, pki.client),
    }[case]
    assert _predict(tls_server, credentials) == "UNAVAILABLE", case
    # the refusal did not hurt the server: the valid client still gets in
    assert _predict(tls_server, _credentials(pki.ca.identity.cert, pki.client)) == "OK"
