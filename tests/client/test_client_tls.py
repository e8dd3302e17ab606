"""TLS and mutual TLS against fake servers with certificates made by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from _client_fake import MODEL, FakeState, start
from pki_helpers import Identity, authority
from scann_serving.client import TLS, AsyncRetrievalClient, RetrievalClient, Unavailable


@pytest.fixture(scope="module")
def pki() -> dict[str, Identity]:
    ca = authority("scann-serving test CA")
    other_ca = authority("some other CA")
    return {
        "ca": ca.identity,
        "server": ca.issue("localhost", server=True),
        "client": ca.issue("recs-service", server=False),
        "stranger": other_ca.issue("stranger", server=False),
        "other_ca": other_ca.identity,
    }


def _serve(pki: dict[str, Identity], *, mutual: bool) -> Iterator[int]:
    creds = grpc.ssl_server_credentials(
        [(pki["server"].key, pki["server"].cert)],
        root_certificates=pki["ca"].cert if mutual else None,
        require_client_auth=mutual,
    )
    server, port = start(FakeState(), creds)
    yield port
    server.stop(grace=None)


@pytest.fixture(scope="module")
def tls_port(pki: dict[str, Identity]) -> Iterator[int]:
    yield from _serve(pki, mutual=False)


@pytest.fixture(scope="module")
def mtls_port(pki: dict[str, Identity]) -> Iterator[int]:
    yield from _serve(pki, mutual=True)


def _client(port: int, tls: TLS) -> RetrievalClient:
    return RetrievalClient(f"localhost:{port}", model=MODEL, tls=tls, retry=None, timeout=5)


def test_tls_with_the_servers_ca(pki: dict[str, Identity], tls_port: int) -> None:
    with _client(tls_port, TLS(root_certificates=pki["ca"].cert)) as c:
        assert c.retrieve("42", k=3).identifiers.shape == (1, 3)


def test_tls_rejects_a_server_signed_by_another_ca(pki: dict[str, Identity], tls_port: int) -> None:
    with (
        _client(tls_port, TLS(root_certificates=pki["other_ca"].cert)) as c,
        pytest.raises(Unavailable),
    ):
        c.status()


def test_plaintext_client_cannot_talk_to_a_tls_server(tls_port: int) -> None:
    plaintext = RetrievalClient(f"localhost:{tls_port}", model=MODEL, retry=None, timeout=5)
    with plaintext as c, pytest.raises(Unavailable):
        c.status()


def test_mtls_with_a_client_certificate(
    pki: dict[str, Identity], mtls_port: int, tmp_path: Path
) -> None:
    for name, data in [
        ("ca.pem", pki["ca"].cert),
        ("client.pem", pki["client"].cert),
        ("client.key", pki["client"].key),
    ]:
        (tmp_path / name).write_bytes(data)
    tls = TLS.from_files(tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key")
    with _client(mtls_port, tls) as c:
        assert c.status().available


def test_mtls_refuses_clients_without_an_accepted_certificate(
    pki: dict[str, Identity], mtls_port: int
) -> None:
    for tls in (
        TLS(root_certificates=pki["ca"].cert),
        TLS(
            pki["ca"].cert, certificate_chain=pki["stranger"].cert, private_key=pki["stranger"].key
        ),
    ):
        with _client(mtls_port, tls) as c, pytest.raises(Unavailable):
            c.status()


@pytest.mark.asyncio(loop_scope="session")
async def test_async_client_over_mtls(pki: dict[str, Identity], mtls_port: int) -> None:
    tls = TLS(pki["ca"].cert, certificate_chain=pki["client"].cert, private_key=pki["client"].key)
    async with AsyncRetrievalClient(f"localhost:{mtls_port}", model=MODEL, tls=tls) as c:
        assert (await c.retrieve(["1", "2"])).identifiers.shape[0] == 2


def test_server_name_override(pki: dict[str, Identity], tls_port: int) -> None:
    # The certificate names localhost and 127.0.0.1; a different target name needs the override.
    tls = TLS(root_certificates=pki["ca"].cert, server_name_override="localhost")
    with RetrievalClient(f"127.0.0.1:{tls_port}", model=MODEL, tls=tls, timeout=5) as c:
        assert c.status().available


def test_tls_config_checks_its_pairs(pki: dict[str, Identity]) -> None:
    with pytest.raises(ValueError, match="both certificate_chain and private_key"):
        TLS(certificate_chain=pki["client"].cert)
    assert "private_key" not in repr(TLS(pki["ca"].cert, pki["client"].cert, pki["client"].key))
