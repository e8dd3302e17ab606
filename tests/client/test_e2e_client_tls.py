"""End to end over mutual TLS: scann-serve started with --ssl_config_file (client_verify)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from pki_helpers import authority
from scann_serving.client import TLS, RetrievalClient, Unavailable

MODEL = "retrieval"


@pytest.fixture(scope="module")
def pki():
    ca = authority("scann-serving test CA")
    other = authority("another CA")
    return {
        "ca": ca.identity,
        "server": ca.issue("localhost", server=True),
        "client": ca.issue("recs", server=False),
        "stranger": other.issue("stranger", server=False),
    }


@pytest.fixture(scope="module")
def mtls_server(tiny_model_base, pki, tmp_path_factory):
    try:
        from serve_helpers import ServerProcess
    except ImportError:
        pytest.skip("tests/serve_helpers.py (ServerProcess) is missing")
    config = tmp_path_factory.mktemp("tls") / "ssl_config.pbtxt"
    # SSLConfig text proto; json.dumps writes valid text-format string literals.
    fields = {
        "server_key": pki["server"].key,
        "server_cert": pki["server"].cert,
        "custom_ca": pki["ca"].cert,
    }
    lines = [f"{name}: {json.dumps(value.decode())}" for name, value in fields.items()]
    config.write_text("\n".join([*lines, "client_verify: true", ""]))
    creds = grpc.ssl_channel_credentials(pki["ca"].cert, pki["client"].key, pki["client"].cert)
    server = ServerProcess(
        f"--ssl_config_file={config}", model_name=MODEL, model_base_path=tiny_model_base, rest=False
    )
    server.start(credentials=creds)
    yield server
    server.stop()


def test_mtls_retrieve(mtls_server, pki, tmp_path: Path) -> None:
    for name, data in [
        ("ca.pem", pki["ca"].cert),
        ("c.pem", pki["client"].cert),
        ("c.key", pki["client"].key),
    ]:
        (tmp_path / name).write_bytes(data)
    tls = TLS.from_files(tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key")
    with RetrievalClient(mtls_server.target, model=MODEL, tls=tls, timeout=30) as c:
        result = c.retrieve(["1", "2"], k=5)
        assert result.identifiers.shape == (2, 5) and result.model_version == 1
        assert c.status().available


@pytest.mark.parametrize(
    "who", ["no client certificate", "certificate from another CA", "plaintext"]
)
def test_mtls_refuses_other_clients(mtls_server, pki, who: str) -> None:
    tls = {
        "no client certificate": TLS(root_certificates=pki["ca"].cert),
        "certificate from another CA": TLS(
            pki["ca"].cert, pki["stranger"].cert, pki["stranger"].key
        ),
        "plaintext": None,
    }[who]
    client = RetrievalClient(mtls_server.target, model=MODEL, tls=tls, retry=None, timeout=10)
    with client, pytest.raises(Unavailable):
        client.status()
