"""Who may read an HTTP endpoint (``/metrics``, ``/health``, the dashboard): loopback, or a token.

A server that listens beyond loopback must be given an access token (``check_listen``), and a
server given one answers 401 to every request without it. The token comes as
``Authorization: Bearer <token>`` (Prometheus' ``authorization.credentials_file``) or as the
password of HTTP basic auth with any user name (a browser's login prompt, Prometheus'
``basic_auth``), and is compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

__all__ = ["CHALLENGE", "InsecureListenError", "authorized", "check_listen", "is_loopback"]

# Sent with a 401: a browser asks for a user name and password (the token) and resends.
CHALLENGE = 'Basic realm="crmrisk", charset="UTF-8"'


class InsecureListenError(ValueError):
    """A server was asked to listen beyond loopback without an access token."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches: 127.0.0.0/8, ::1, "localhost".

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "", "10.0.0.5")]
    [True, True, True, False, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # "" (every interface) or a host name: it may reach other machines
        return False


def check_listen(host: str, token: str | None, what: str) -> None:
    """Raise ``InsecureListenError`` when ``what`` would listen on ``host`` beyond loopback
    without an access token."""
    if token is None and not is_loopback(host):
        raise InsecureListenError(
            f"{what} would listen on {host!r}, beyond loopback, without an access token: give "
            "it one (clients send it as a bearer token or basic-auth password), or listen on "
            "127.0.0.1"
        )


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (bearer, or basic-auth password).

    >>> authorized("Bearer s3cret", "s3cret"), authorized(None, "s3cret")
    (True, False)
    >>> authorized("Basic " + base64.b64encode(b"anyone:s3cret").decode(), "s3cret")
    True
    """
    if not token:
        return False  # an empty token would let an empty password in
    scheme, _, credentials = (header or "").strip().partition(" ")
    given = credentials.strip()
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(given, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    # Constant time in the token's content: a mismatch does not say how much of it was right.
    return hmac.compare_digest(given.encode(), token.encode())
