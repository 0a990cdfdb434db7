"""A throwaway certificate authority and a loopback server certificate, for the test broker's TLS listener."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerTls:
    """``ca_file``: the CA's certificate (PEM), what clients trust. ``keystore``: the server's key and
    certificate chain as PKCS#12, protected by ``password`` (the store's and the key's)."""

    ca_file: Path
    keystore: Path
    password: str


def loopback_server_tls(directory: Path, *, days: int = 30) -> ServerTls:
    """The CA and server files under ``directory``, made once and kept (clients may hold the CA file).

    The server certificate names 127.0.0.1 and localhost, so clients verify the host name as usual.
    """
    files = ServerTls(directory / "ca.pem", directory / "server.p12", "")
    password_file = directory / "keystore.password"
    if files.ca_file.exists() and files.keystore.exists() and password_file.exists():
        return ServerTls(files.ca_file, files.keystore, password_file.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leadflow test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    password = secrets.token_urlsafe(18)
    # The server's key leaves this function only inside the password-protected store.
    files.keystore.write_bytes(pkcs12.serialize_key_and_certificates(
        b"kafka", server_key, server_cert, [ca_cert], serialization.BestAvailableEncryption(password.encode())
    ))
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    password_file.write_text(password)
    return ServerTls(files.ca_file, files.keystore, password)
