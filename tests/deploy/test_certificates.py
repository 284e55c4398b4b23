"""The local CA and server certificate (keytool, openssl): a TLS client that trusts the CA
accepts the server as 127.0.0.1 and as localhost; the files are private and made once."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from crmrisk.deploy import LocalCertificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> LocalCertificates:
    return LocalCertificates(tmp_path_factory.mktemp("tls")).ensure()


def _handshake(certificates: LocalCertificates, server_name: str, trust) -> dict:
    """A TLS handshake over a socket pair; returns the certificate the client accepted."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certificates.cert_pem, certificates.key_pem)
    client = ssl.create_default_context(cafile=trust)
    ours, theirs = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(theirs, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(ours, server_hostname=server_name) as tls:
            tls.sendall(b"x")
            return tls.getpeercert()
    finally:
        thread.join(10)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_certificates__a_client_trusting_the_ca_accepts_the_server(certificates, name):
    peer = _handshake(certificates, name, certificates.ca_pem)
    assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]


def test_certificates__a_client_trusting_only_the_system_refuses_it(certificates):
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certificates, "127.0.0.1", None)


def test_certificates__private_files_made_once(certificates):
    files = [
        certificates.password_file,
        certificates.ca_pem,
        certificates.keystore,
        certificates.cert_pem,
        certificates.key_pem,
    ]
    assert sorted(p.name for p in certificates.folder.iterdir()) == sorted(p.name for p in files)
    assert all(p.stat().st_mode & 0o077 == 0 for p in files)  # no CA key left behind either
    before = {p: p.read_bytes() for p in files}
    certificates.ensure()
    assert {p: p.read_bytes() for p in files} == before
