"""The resource server's token checks, against a local identity provider on 127.0.0.1.

Every accept and refuse case of the issue: signature, issuer, audience, expiry and not-before with
leeway, algorithms, the user claim, JWKS caching and re-reading on an unknown key id, and opaque
tokens through RFC 7662 introspection. Refusals are logged with a reason, never with the token.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from infra_mcp.errors import ValidationFailed
from infra_mcp.server import auth as auth_module
from infra_mcp.server.auth import InfraTokenVerifier, TokenRefused, auth_config, discovery_urls
from infra_mcp.settings import Settings
from tests.local_idp import INTROSPECTION_CLIENT, LocalIdP, local_idp

RESOURCE = "http://127.0.0.1:8123/mcp"


@pytest.fixture
def idp() -> Iterator[LocalIdP]:
    with local_idp() as running:
        yield running


def settings_for(idp: LocalIdP, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "auth_issuer": idp.issuer,
        "public_url": "http://127.0.0.1:8123",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def verifier(idp: LocalIdP, tmp_path: Path) -> AsyncIterator[InfraTokenVerifier]:
    made = InfraTokenVerifier(auth_config(settings_for(idp, tmp_path), default_public_url="http://unused:1"))
    yield made
    await made.aclose()


async def refusal(verifier: InfraTokenVerifier, token: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as caught:
        await verifier.check(token)
    assert await verifier.verify_token(token) is None  # the SDK's protocol says no the same way
    return caught.value


async def test_a_token_of_the_issuer_for_this_resource_is_accepted_as_its_user(
    idp: LocalIdP, verifier: InfraTokenVerifier
) -> None:
    access = await verifier.check(idp.mint("alice", RESOURCE))
    assert access.claims == {"iss": idp.issuer, "infra_mcp_user": "id-alice"}
    assert access.resource == RESOURCE
    assert access.scopes == ["openid", "infra"]
    assert access.client_id == "agent-host"


async def test_the_user_claim_is_configurable(idp: LocalIdP, tmp_path: Path) -> None:
    config = auth_config(settings_for(idp, tmp_path, auth_user_claim="preferred_username"), default_public_url="")
    access = await InfraTokenVerifier(config).check(idp.mint("alice", RESOURCE))
    assert access.claims is not None
    assert access.claims["infra_mcp_user"] == "alice"


async def test_the_audience_defaults_to_the_public_url_and_can_be_set(idp: LocalIdP, tmp_path: Path) -> None:
    assert auth_config(settings_for(idp, tmp_path), default_public_url="").resource == RESOURCE
    bound = auth_config(settings_for(idp, tmp_path, public_url=None), default_public_url="http://127.0.0.1:9")
    assert bound.resource == "http://127.0.0.1:9/mcp"
    named = auth_config(settings_for(idp, tmp_path, auth_audience="infra-mcp"), default_public_url="")
    assert named.resource == RESOURCE  # the metadata still names the endpoint
    access = await InfraTokenVerifier(named).check(idp.mint("alice", "infra-mcp"))
    assert access.resource == RESOURCE
    refused = await refusal(InfraTokenVerifier(named), idp.mint("alice", RESOURCE))
    assert "another audience" in refused.reason


async def test_an_audience_list_containing_this_resource_is_accepted(
    idp: LocalIdP, verifier: InfraTokenVerifier
) -> None:
    assert await verifier.check(idp.mint("alice", RESOURCE, aud=["account", RESOURCE]))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "http://127.0.0.1:8123/other"}, "another audience"),
        ({"aud": ["account"]}, "another audience"),
        ({"aud": None}, "lacks the 'aud' claim"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"exp": None}, "lacks the 'exp' claim"),
        ({"nbf": 4_000_000_000}, "not valid yet"),  # year 2096: a fixed future, whatever the run takes
        ({"iss": "http://127.0.0.1:1/realms/evil"}, "another issuer"),
        ({"iss": None}, "another issuer"),
        ({"sub": None}, "no usable 'sub' claim"),
        ({"sub": ""}, "no usable 'sub' claim"),
        ({"sub": 42}, "'sub' claim"),
        ({"sub": "rule:auto-approval"}, "reserved prefix"),
    ],
    ids=[
        "wrong-audience",
        "audience-list-without-us",
        "no-audience",
        "expired",
        "no-expiry",
        "not-before-in-the-future",
        "unknown-issuer",
        "no-issuer",
        "no-user-claim",
        "empty-user-claim",
        "user-claim-not-a-string",
        "reserved-user-name",
    ],
)
async def test_a_token_failing_a_claim_check_is_refused_as_invalid_token(
    idp: LocalIdP, verifier: InfraTokenVerifier, overrides: dict[str, Any], reason: str
) -> None:
    refused = await refusal(verifier, idp.mint("alice", RESOURCE, **overrides))
    assert (refused.status, refused.error) == (401, "invalid_token")
    assert reason in refused.reason


async def test_expiry_and_not_before_have_a_small_leeway(idp: LocalIdP, verifier: InfraTokenVerifier) -> None:
    now = int(time.time())
    assert await verifier.check(idp.mint("alice", RESOURCE, exp=now - 10, nbf=now + 10, iat=now + 10))
    await refusal(verifier, idp.mint("alice", RESOURCE, exp=now - 31))


async def test_a_token_signed_by_another_key_under_a_published_key_id_is_refused(
    idp: LocalIdP, verifier: InfraTokenVerifier
) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = await refusal(verifier, idp.mint("alice", RESOURCE, key=forger))
    assert "signature" in refused.reason


async def test_a_tampered_payload_is_refused(idp: LocalIdP, verifier: InfraTokenVerifier) -> None:
    header, _, signature = idp.mint("alice", RESOURCE).split(".")
    _, payload, _ = idp.mint("bob", RESOURCE).split(".")
    refused = await refusal(verifier, f"{header}.{payload}.{signature}")
    assert "signature" in refused.reason


@pytest.mark.parametrize("algorithm", ["none", "HS256"])
async def test_unsigned_and_shared_secret_tokens_are_refused(
    idp: LocalIdP, verifier: InfraTokenVerifier, algorithm: str
) -> None:
    claims = idp.claims("alice", RESOURCE)
    if algorithm == "none":
        token = jwt.encode(claims, None, algorithm="none", headers={"kid": "key-1"})
    else:
        # The HS256 "secret" an attacker would try: the published public key's text.
        token = jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "key-1"})
    refused = await refusal(verifier, token)
    assert "algorithm" in refused.reason


async def test_an_ec_key_of_the_issuer_works_too(idp: LocalIdP, verifier: InfraTokenVerifier) -> None:
    idp.add_key("ec-1", algorithm="ES256")
    assert await verifier.check(idp.mint("alice", RESOURCE, kid="ec-1"))


async def test_the_jwks_is_read_once_and_again_when_a_new_key_id_appears(
    idp: LocalIdP, verifier: InfraTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_module, "JWKS_REFRESH_MIN_SECONDS", 0.0)
    for _ in range(3):
        await verifier.check(idp.mint("alice", RESOURCE))
    assert idp.requests.count("/protocol/openid-connect/certs") == 1
    assert idp.requests.count("/.well-known/openid-configuration") == 1
    idp.add_key("key-2")  # the issuer rotates: a new key is published
    assert await verifier.check(idp.mint("alice", RESOURCE, kid="key-2"))
    assert idp.requests.count("/protocol/openid-connect/certs") == 2


async def test_made_up_key_ids_do_not_make_the_server_read_the_jwks_each_time(
    idp: LocalIdP, verifier: InfraTokenVerifier
) -> None:
    await verifier.check(idp.mint("alice", RESOURCE))
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    idp.algorithms["made-up"] = "RS256"
    for _ in range(5):
        refused = await refusal(verifier, idp.mint("alice", RESOURCE, kid="made-up", key=forger))
        assert "not one of the issuer's keys" in refused.reason
    assert idp.requests.count("/protocol/openid-connect/certs") == 1


async def test_an_explicit_jwks_url_skips_discovery(idp: LocalIdP, tmp_path: Path) -> None:
    settings = settings_for(idp, tmp_path, auth_jwks_url=f"{idp.issuer}/protocol/openid-connect/certs")
    assert await InfraTokenVerifier(auth_config(settings, default_public_url="")).check(idp.mint("alice", RESOURCE))
    assert "/.well-known/openid-configuration" not in idp.requests


async def test_an_unreachable_issuer_refuses_tokens_instead_of_accepting_them(tmp_path: Path) -> None:
    with local_idp() as gone:
        token = gone.mint("alice", RESOURCE)
        settings = settings_for(gone, tmp_path)
    verifier = InfraTokenVerifier(auth_config(settings, default_public_url=""))
    refused = await refusal(verifier, token)
    assert "cannot be read" in refused.reason


async def test_an_issuer_in_trouble_is_not_asked_again_for_every_token(
    idp: LocalIdP, verifier: InfraTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp.jwks_down = True
    for _ in range(3):
        refused = await refusal(verifier, idp.mint("alice", RESOURCE))
        assert "cannot be read" in refused.reason
    assert idp.requests.count("/protocol/openid-connect/certs") == 1
    idp.jwks_down = False
    monkeypatch.setattr(auth_module, "JWKS_REFRESH_MIN_SECONDS", 0.0)
    assert await verifier.check(idp.mint("alice", RESOURCE))


class Clock:
    """``time`` as the auth module sees it: monotonic() is whatever the test says; time() is real."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


async def test_a_failed_re_read_keeps_the_known_keys_and_waits_before_asking_again(
    idp: LocalIdP, verifier: InfraTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(auth_module, "time", clock)
    await verifier.check(idp.mint("alice", RESOURCE))  # read at t=0
    idp.jwks_down = True
    idp.add_key("key-2")
    clock.now = 100.0
    with pytest.raises(TokenRefused):
        await verifier.check(idp.mint("alice", RESOURCE, kid="key-2"))  # read again at t=100: fails
    reads = idp.requests.count("/protocol/openid-connect/certs")
    clock.now = 105.0
    with pytest.raises(TokenRefused):
        await verifier.check(idp.mint("alice", RESOURCE, kid="key-2"))
    assert idp.requests.count("/protocol/openid-connect/certs") == reads  # not asked again within 10 s
    assert await verifier.check(idp.mint("alice", RESOURCE))  # key-1 is still known


async def test_refusals_are_logged_with_a_reason_and_never_the_token(
    idp: LocalIdP, verifier: InfraTokenVerifier
) -> None:
    token = idp.mint("alice", "http://127.0.0.1:8123/other")
    with capture_logs() as logs, pytest.raises(TokenRefused):
        await verifier.check(token)
    refused = [entry for entry in logs if entry["event"] == "token_refused"]
    assert len(refused) == 1
    assert "another audience" in refused[0]["reason"]
    assert refused[0]["unverified_iss"] == idp.issuer
    text = repr(logs)
    assert token not in text
    assert token.split(".")[2] not in text


def introspecting(idp: LocalIdP, tmp_path: Path, secret: str = INTROSPECTION_CLIENT[1]) -> InfraTokenVerifier:
    settings = settings_for(
        idp,
        tmp_path,
        auth_introspection_url=f"{idp.issuer}/protocol/openid-connect/token/introspect",
        auth_introspection_client_id=INTROSPECTION_CLIENT[0],
        auth_introspection_client_secret=secret,
    )
    return InfraTokenVerifier(auth_config(settings, default_public_url=""))


async def test_an_opaque_token_is_checked_by_introspection(idp: LocalIdP, tmp_path: Path) -> None:
    access = await introspecting(idp, tmp_path).check(idp.opaque_token("alice", RESOURCE))
    assert access.claims is not None
    assert access.claims["infra_mcp_user"] == "id-alice"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"active": False}, "not active"),
        ({"aud": "http://127.0.0.1:8123/other"}, "another audience"),
        ({"aud": None}, "another audience"),
        ({"iss": "http://127.0.0.1:1/realms/evil"}, "another issuer"),
        ({"exp": int(time.time()) - 120}, "expired"),
    ],
    ids=["inactive", "wrong-audience", "no-audience", "other-issuer", "expired"],
)
async def test_an_opaque_token_the_introspection_does_not_vouch_for_is_refused(
    idp: LocalIdP, tmp_path: Path, kwargs: dict[str, Any], reason: str
) -> None:
    refused = await refusal(introspecting(idp, tmp_path), idp.opaque_token("alice", RESOURCE, **kwargs))
    assert reason in refused.reason


async def test_an_unknown_opaque_token_and_wrong_introspection_credentials_are_refused(
    idp: LocalIdP, tmp_path: Path
) -> None:
    await refusal(introspecting(idp, tmp_path), "not-a-token-anyone-issued")
    refused = await refusal(introspecting(idp, tmp_path, secret="wrong"), idp.opaque_token("alice", RESOURCE))
    assert "introspection endpoint" in refused.reason


async def test_an_opaque_token_without_introspection_configured_is_refused(
    idp: LocalIdP, verifier: InfraTokenVerifier
) -> None:
    refused = await refusal(verifier, idp.opaque_token("alice", RESOURCE))
    assert "not a JWT" in refused.reason


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"auth_issuer": "not a url"}, "INFRA_MCP_AUTH_ISSUER"),
        ({"public_url": "ftp://x"}, "INFRA_MCP_PUBLIC_URL"),
        ({"auth_introspection_url": "http://127.0.0.1:1/introspect"}, "INFRA_MCP_AUTH_INTROSPECTION_CLIENT_ID"),
    ],
)
def test_incomplete_auth_settings_are_refused_at_start(
    idp: LocalIdP, tmp_path: Path, overrides: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        auth_config(settings_for(idp, tmp_path, **overrides), default_public_url="")
    assert caught.value.details["setting"] == setting


def test_the_issuers_metadata_is_looked_for_where_oidc_and_rfc_8414_put_it() -> None:
    assert discovery_urls("https://idp.example/realms/infra") == [
        "https://idp.example/realms/infra/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server/realms/infra",
        "https://idp.example/.well-known/openid-configuration/realms/infra",
    ]
    assert discovery_urls("https://idp.example") == [
        "https://idp.example/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server",
    ]


def test_required_scopes_are_read_space_or_comma_separated_or_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for raw in ("infra  admin", "infra,admin", '["infra", "admin"]'):
        monkeypatch.setenv("INFRA_MCP_AUTH_REQUIRED_SCOPES", raw)
        assert Settings(data_dir=tmp_path).auth_required_scopes == ["infra", "admin"]
