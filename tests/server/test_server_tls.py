"""TLS/mTLS from --ssl_config_file (TF Serving's SSLConfig with PEM contents): plaintext,
missing and untrusted client certificates are refused; a valid one works."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from serve_helpers import GRPC_SERVER_MODES, ServerProcess
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

MODEL = "retrieval"


def _cert(
    name: str, issuer: tuple[Any, Any] | None, *, ca: bool = False, server: bool = False
) -> tuple[Any, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    ca = _cert("test-ca", None, ca=True)
    server = _cert("localhost", ca, server=True)
    client = _cert("client", ca)
    rogue_ca = _cert("rogue-ca", None, ca=True)
    rogue = _cert("rogue", rogue_ca)
    return {
        "ca": _pem(ca[0]),
        "server_cert": _pem(server[0]),
        "server_key": _key_pem(server[1]),
        "client_cert": _pem(client[0]),
        "client_key": _key_pem(client[1]),
        "rogue_cert": _pem(rogue[0]),
        "rogue_key": _key_pem(rogue[1]),
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
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["query"].CopyFrom(tf.make_tensor_proto(np.asarray([b"1"], dtype=object)))
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
