"""Which binds ``serve --http`` accepts: loopback without auth, anything with auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_mcp.errors import ValidationFailed
from infra_mcp.server.http import Bind, loopback_security, parse_bind, refuse_open_bind
from infra_mcp.settings import Settings


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("127.0.0.1:8000", Bind("127.0.0.1", 8000)),
        ("localhost:1", Bind("localhost", 1)),
        ("[::1]:8000", Bind("::1", 8000)),
        ("0.0.0.0:443", Bind("0.0.0.0", 443)),  # noqa: S104 (parsed, not bound)
    ],
)
def test_host_and_port_are_parsed(text: str, bind: Bind) -> None:
    assert parse_bind(text) == bind


@pytest.mark.parametrize("text", ["127.0.0.1", ":8000", "127.0.0.1:http", "127.0.0.1:70000", "127.0.0.1:٨٠"])
def test_a_malformed_bind_is_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_bind(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104
        ("::", False),
        ("10.0.0.1", False),
        ("localhost.evil.example", False),
    ],
)
def test_only_loopback_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert Bind(host, 1).loopback is loopback


def test_without_auth_an_open_bind_is_refused_and_loopback_is_served(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, user="alice")
    refuse_open_bind(Bind("127.0.0.1", 8000), settings)
    with pytest.raises(ValidationFailed) as caught:
        refuse_open_bind(Bind("0.0.0.0", 8000), settings)  # noqa: S104
    assert caught.value.details["reason"] == "no_auth_on_open_bind"


def test_with_auth_any_bind_is_served_given_the_public_url(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, auth_issuer="https://idp.example/realms/infra", public_url="https://infra.example.com"
    )
    refuse_open_bind(Bind("0.0.0.0", 8000), settings)  # noqa: S104


def test_with_auth_an_open_bind_without_the_public_url_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auth_issuer="https://idp.example/realms/infra")
    refuse_open_bind(Bind("127.0.0.1", 8000), settings)  # the bind address is the public one
    with pytest.raises(ValidationFailed) as caught:
        refuse_open_bind(Bind("0.0.0.0", 8000), settings)  # noqa: S104
    assert caught.value.details["reason"] == "public_url_required"


def test_dns_rebinding_protection_covers_any_loopback_address() -> None:
    security = loopback_security(Bind("127.0.0.2", 8000))
    assert security.enable_dns_rebinding_protection
    assert "127.0.0.2:*" in security.allowed_hosts
    assert "http://127.0.0.2:*" in security.allowed_origins
    assert all(h.startswith(("127.", "localhost:", "[::1]:")) for h in security.allowed_hosts)
