"""The deployment example (Dockerfile, deploy/) says what the code understands.

Docker is not run here: these check that the files parse, that every INFRA_MCP_* variable they set
is a setting infra-mcp reads (a misspelt one would be ignored in silence), and the few promises the
comments make (a shared server key, tokens required, no shared host name, the load balancer's
session affinity)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra_mcp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PREFIX = "INFRA_MCP_"


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _replicas() -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"]["infra-mcp"]
    return service


def _env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines, commented-out ones included (they document settings too)."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _known(name: str) -> bool:
    return name.startswith(PREFIX) and name[len(PREFIX) :].lower() in Settings.model_fields


def _settings_named_in(text: str) -> set[str]:
    return set(re.findall(r"\bINFRA_MCP_[A-Z0-9_]+[A-Z0-9]\b", text))


def test_the_compose_file_is_yaml_with_replicas_postgresql_an_s3_bucket_and_a_balancer() -> None:
    compose = _compose()
    assert {"infra-mcp", "postgres", "minio", "bucket", "balancer"} <= set(compose["services"])
    assert _replicas()["deploy"]["replicas"] >= 2


def test_every_infra_mcp_variable_the_deployment_sets_is_a_setting() -> None:
    environment = _replicas()["environment"]
    assert isinstance(environment, dict)
    named = {k for k in environment if k.startswith(PREFIX)}
    named |= {k for k in _env_file(DEPLOY / "identity.env.example") if k.startswith(PREFIX)}
    for path in (DEPLOY / "compose.yaml", DEPLOY / "identity.env.example", DEPLOY / "env.example", ROOT / "Dockerfile"):
        named |= _settings_named_in(path.read_text())
    unknown = sorted(n for n in named if not _known(n))
    assert unknown == [], f"not settings infra-mcp reads: {unknown}"
    assert len(named) >= 10


@pytest.mark.parametrize("name", ["INFRA_MCP_SHUTDOWN_GRACE", "INFRA_MCP_AUTH_ISSUERS", "INFRA_MCP_DB_URL"])
def test_the_check_would_catch_a_misspelt_variable(name: str) -> None:
    assert not _known(name)


def test_the_replicas_use_postgresql_s3_and_one_shared_server_key() -> None:
    environment = _replicas()["environment"]
    assert environment["INFRA_MCP_DATABASE_URL"].startswith("postgresql://")
    assert environment["INFRA_MCP_STATE_LOCATION"].startswith("s3://")
    key = environment["INFRA_MCP_KEY_FILE"]
    assert key == "/run/secrets/infra_mcp_key"
    assert _replicas()["secrets"] == ["infra_mcp_key"]
    assert _compose()["secrets"]["infra_mcp_key"]["file"] == "./secret.key"


def test_the_replicas_require_tokens_of_the_identity_provider() -> None:
    identity = _env_file(DEPLOY / "identity.env.example")
    assert identity["INFRA_MCP_AUTH_ISSUER"].startswith("https://")
    assert identity["INFRA_MCP_PUBLIC_URL"].startswith("https://")
    assert _replicas()["env_file"] == [{"path": "identity.env", "required": True}]
    assert _replicas()["command"] == ["serve", "--http", "0.0.0.0:8000"]


def test_the_replicas_keep_their_own_host_names() -> None:
    """State locks name their holder by host and pid: replicas sharing a host name could take a live
    holder in another container for a dead process of their own host and break its lock."""
    assert "hostname" not in _replicas()
    assert "container_name" not in _replicas()


def test_the_stop_grace_outlasts_the_servers_own_shutdown_grace() -> None:
    grace = float(_replicas()["environment"]["INFRA_MCP_HTTP_SHUTDOWN_GRACE_SECONDS"])
    stop = _replicas()["stop_grace_period"]
    assert stop.endswith("s")
    assert float(stop[:-1]) > grace


def test_the_balancer_sticks_sessions_to_the_replica_that_issued_them() -> None:
    config = (DEPLOY / "haproxy.cfg").read_text()
    assert "stick store-response res.hdr(mcp-session-id)" in config
    assert "stick match req.hdr(mcp-session-id)" in config
    assert "infra-mcp:8000" in config
    ports = _compose()["services"]["balancer"]["ports"]
    assert any(p.endswith(":8080") for p in ports)
    assert re.search(r"^\s*bind :8080$", config, re.MULTILINE)


def test_the_image_serves_http_on_the_port_the_balancer_uses_and_installs_what_it_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8000" in dockerfile
    assert 'ENTRYPOINT ["infra-mcp"]' in dockerfile
    for copied in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE):
        for source in copied.split():
            assert (ROOT / source).exists(), source
    assert "USER infra" in dockerfile  # never root


def test_secrets_and_filled_in_env_files_are_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"deploy/.env", "deploy/identity.env", "deploy/secret.key"} <= set(ignored)
