"""A local certificate authority and one server certificate for 127.0.0.1, made with keytool.

Kafka reads the PKCS12 key store keytool writes; redis-server reads PEM only, so the key is
converted once with ``openssl pkcs12``. Files in ``folder`` (made once, mode 0600)::

    store.password     random password of the key store (passed to the tools as a file)
    ca.pem             the CA's certificate: what clients trust (RISK_KAFKA__SSL_CAFILE, ...)
    server.p12         the server's key and its chain (Kafka: ssl.keystore.location)
    server.pem         the server's certificate (redis-server: tls-cert-file)
    server.key         the server's private key, unencrypted (redis-server: tls-key-file)

The CA's own key is deleted once it has signed the server certificate: nothing else is ever
signed by it. The certificate names 127.0.0.1 and localhost and may authenticate a client too
(a Kafka broker connects to its own controller listener with it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CertificateError", "LocalCertificates"]

_VALIDITY_DAYS = "3650"
_KEY = ("-keyalg", "EC", "-groupname", "secp256r1")  # fast to make; every client here takes it


class CertificateError(RuntimeError):
    """keytool or openssl is missing or failed; the message quotes its output."""


@dataclass(frozen=True)
class LocalCertificates:
    """The files above in ``folder``; ``ensure`` makes them when one is missing."""

    folder: Path
    keytool: str = "keytool"
    openssl: str = "openssl"

    @property
    def password_file(self) -> Path:
        return self.folder / "store.password"

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "server.p12"

    @property
    def cert_pem(self) -> Path:
        return self.folder / "server.pem"

    @property
    def key_pem(self) -> Path:
        return self.folder / "server.key"

    def store_password(self) -> str:
        return self.password_file.read_text()

    def ensure(self) -> LocalCertificates:
        """Make the CA and the server certificate unless every file is there; returns self."""
        files = (self.password_file, self.ca_pem, self.keystore, self.cert_pem, self.key_pem)
        if all(path.is_file() for path in files):
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():  # a half-made set from an interrupted run
            path.unlink()
        old_umask = os.umask(0o077)
        try:
            self._make()
        finally:
            os.umask(old_umask)
        return self

    def _make(self) -> None:
        self.password_file.write_text(secrets.token_urlsafe(24))
        ca_store, csr, signed = (self.folder / n for n in ("ca.p12", "server.csr", "server.crt"))
        store = ("-storetype", "PKCS12", "-storepass:file", str(self.password_file))
        self._keytool(
            "-genkeypair", "-alias", "ca", *_KEY, "-dname", "CN=crmrisk local CA",
            "-ext", "bc:c=ca:true,pathlen:0", "-ext", "ku:c=keyCertSign,cRLSign",
            "-validity", _VALIDITY_DAYS, "-keystore", str(ca_store), *store,
        )  # fmt: skip
        self._keytool(
            "-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *store,
            "-file", str(self.ca_pem),
        )  # fmt: skip
        self._keytool(
            "-genkeypair", "-alias", "server", *_KEY, "-dname", "CN=localhost",
            "-validity", _VALIDITY_DAYS, "-keystore", str(self.keystore), *store,
        )  # fmt: skip
        self._keytool(
            "-certreq", "-alias", "server", "-keystore", str(self.keystore), *store,
            "-file", str(csr),
        )  # fmt: skip
        self._keytool(
            "-gencert", "-alias", "ca", "-keystore", str(ca_store), *store,
            "-infile", str(csr), "-outfile", str(signed), "-rfc", "-validity", _VALIDITY_DAYS,
            "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-ext", "ku:c=digitalSignature",
            "-ext", "eku=serverAuth,clientAuth",
        )  # fmt: skip
        # The reply with the CA appended is a whole chain: keytool installs it without asking.
        signed.write_text(signed.read_text() + self.ca_pem.read_text())
        self._keytool(
            "-importcert", "-noprompt", "-alias", "server", "-keystore", str(self.keystore),
            *store, "-file", str(signed),
        )  # fmt: skip
        for path in (ca_store, csr, signed):
            path.unlink()
        source = ("pkcs12", "-in", str(self.keystore), "-passin", f"file:{self.password_file}")
        self._openssl(*source, "-nocerts", "-nodes", "-out", str(self.key_pem))
        self._openssl(*source, "-nokeys", "-clcerts", "-out", str(self.cert_pem))

    def _keytool(self, *args: str) -> None:
        _run(self.keytool, "the JDK's keytool (`make setup` installs a JDK)", args)

    def _openssl(self, *args: str) -> None:
        _run(self.openssl, "openssl (`apt-get install openssl`)", args)


def _run(tool: str, hint: str, args: tuple[str, ...]) -> None:
    executable = shutil.which(tool)
    if executable is None:
        raise CertificateError(f"{tool} not found: needs {hint}")
    done = subprocess.run([executable, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-1500:]
        raise CertificateError(f"{tool} {args[0]} failed (exit {done.returncode}):\n{output}")
