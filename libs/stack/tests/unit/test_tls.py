"""The test broker's CA and server certificate: a client configured like a service trusts it for 127.0.0.1."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka.helpers import create_ssl_context
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from leadflow_stack.tls import ServerTls, loopback_server_tls


def _server_context(tls: ServerTls, directory: Path) -> ssl.SSLContext:
    key, cert, chain = pkcs12.load_key_and_certificates(tls.keystore.read_bytes(), tls.password.encode())
    assert key is not None and cert is not None
    pem = directory / "server.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *chain])
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, server_hostname: str) -> None:
    """A TLS handshake in memory, without sockets."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(client_in, client_out, server_hostname=server_hostname)
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_a_client_trusting_the_ca_file_verifies_the_server_for_loopback(tmp_path: Path) -> None:
    tls = loopback_server_tls(tmp_path / "tls")
    server = _server_context(tls, tmp_path)
    for host in ("127.0.0.1", "localhost"):
        _handshake(create_ssl_context(cafile=tls.ca_file), server, host)
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|doesn't match"):
        _handshake(create_ssl_context(cafile=tls.ca_file), server, "broker.example.com")


def test_a_client_without_the_ca_refuses_the_server(tmp_path: Path) -> None:
    server = _server_context(loopback_server_tls(tmp_path / "tls"), tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _handshake(create_ssl_context(), server, "127.0.0.1")


def test_the_files_are_made_once_and_kept(tmp_path: Path) -> None:
    first = loopback_server_tls(tmp_path / "tls")
    ca = first.ca_file.read_bytes()
    again = loopback_server_tls(tmp_path / "tls")
    assert again == first
    assert again.ca_file.read_bytes() == ca
    assert len(first.password) >= 20
