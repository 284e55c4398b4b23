"""Access to the HTTP endpoints: loopback or a token, the token as bearer or basic-auth password."""

import base64

import pytest

from crmrisk.stream.access import InsecureListenError, authorized, check_listen, is_loopback

TOKEN = "a-long-enough-token-123"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}", f"bearer  {TOKEN} ", _basic("anyone", TOKEN), _basic("", TOKEN)],
)
def test_authorized__accepts_the_token_as_bearer_or_basic_password(header):
    assert authorized(header, TOKEN)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Token {TOKEN}",
        TOKEN,
        _basic(TOKEN, "wrong"),  # the token as the user name is not the password
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
def test_authorized__refuses_anything_else(header):
    assert not authorized(header, TOKEN)


def test_authorized__an_empty_token_lets_nobody_in():
    assert not authorized("Bearer ", "")
    assert not authorized(_basic("u", ""), "")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_is_loopback__loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "dashboard.example.com"])
def test_is_loopback__everything_else(host):
    assert not is_loopback(host)


def test_check_listen__beyond_loopback_needs_a_token():
    with pytest.raises(InsecureListenError, match=r"'0.0.0.0'.*access token"):
        check_listen("0.0.0.0", None, "/metrics")
    check_listen("0.0.0.0", TOKEN, "/metrics")
    check_listen("127.0.0.1", None, "/metrics")
