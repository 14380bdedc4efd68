"""Wiring the upstream from settings: which server, which environment, what status may show."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import StdioServerParameters

from infra_mcp.settings import Settings
from infra_mcp.upstream.factory import (
    describe_target,
    make_dialect,
    make_upstream,
    redact_args,
    redact_url,
    stdio_target,
    upstream_env,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENVIRON = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_SESSION_TOKEN": "session-secret",
    "AWS_API_MCP_PROFILE_NAME": "ops",
    "HOME": "/home/x",
    "GITHUB_TOKEN": "not-for-the-upstream",
}


def test_the_sandbox_gets_the_data_dir_and_its_knobs_but_no_aws_credentials(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sandbox_latency_ms=5, sandbox_throttle_rate=0.25, sandbox_seed=3)
    env = upstream_env(settings, ENVIRON)
    assert env["INFRA_MCP_DATA_DIR"] == str(tmp_path)
    assert env["INFRA_MCP_SANDBOX_LATENCY_MS"] == "5"
    assert env["INFRA_MCP_SANDBOX_THROTTLE_RATE"] == "0.25"
    assert env["INFRA_MCP_SANDBOX_SEED"] == "3"
    assert not any(k.startswith("AWS_") for k in env)


def test_a_real_upstream_gets_our_aws_variables_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upstream_command="uvx", aws_region="eu-west-1", aws_profile="dev")
    env = upstream_env(settings, ENVIRON)
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["AWS_API_MCP_PROFILE_NAME"] == "ops"
    assert env["AWS_PROFILE"] == "dev"
    assert env["AWS_REGION"] == "eu-west-1"
    assert "GITHUB_TOKEN" not in env
    assert "HOME" not in env, "the SDK adds its own safe defaults"


def test_the_profile_in_the_environment_wins_over_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upstream_command="uvx", aws_profile="dev")
    assert upstream_env(settings, {"AWS_PROFILE": "prod"})["AWS_PROFILE"] == "prod"


def test_status_target_shows_env_names_never_values(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        upstream_command="uvx",
        upstream_args=["awslabs.aws-api-mcp-server@latest", "--api-key", "k3y", "token=abc"],
    )
    target = describe_target(settings, upstream_env(settings, ENVIRON))
    assert "AWS_SECRET_ACCESS_KEY" in target
    for secret in (SECRET, "AKIAEXAMPLE", "session-secret", "k3y", "abc"):
        assert secret not in target
    assert target.startswith("uvx awslabs.aws-api-mcp-server@latest --api-key *** token=***")


def test_urls_lose_userinfo_and_query_values() -> None:
    assert (
        redact_url("https://user:pw@example.com:8443/mcp?token=abc&x=1")
        == "https://example.com:8443/mcp?token=***&x=***"
    )
    assert redact_args(["--secret-key=abc", "--region", "us-east-1"]) == ["--secret-key=***", "--region", "us-east-1"]


async def test_the_default_upstream_is_the_sandbox_launched_with_this_python(tmp_path: Path) -> None:
    up = make_upstream(Settings(data_dir=tmp_path))
    status_target = up._target
    assert status_target.startswith("python -m infra_mcp.sandbox")
    params = stdio_target(Settings(data_dir=tmp_path), {})
    assert isinstance(params, StdioServerParameters)
    assert (params.command, params.args) == (sys.executable, ["-m", "infra_mcp.sandbox"])
    await up.aclose()


def test_the_dialect_and_its_tool_follow_settings(tmp_path: Path) -> None:
    assert make_dialect(Settings(data_dir=tmp_path)).tool == "call_aws"
    run_script = make_dialect(Settings(data_dir=tmp_path, upstream_dialect="run_script"))
    assert (run_script.name, run_script.tool, run_script.experimental) == ("run_script", "aws___run_script", True)
    assert make_dialect(Settings(data_dir=tmp_path, upstream_tool="aws___call_aws")).tool == "aws___call_aws"


PASSED_THROUGH = {
    "HTTPS_PROXY": "http://proxy:3128",
    "HTTP_PROXY": "http://proxy:3128",
    "NO_PROXY": "localhost,127.0.0.1",
    "https_proxy": "http://proxy:3128",
    "http_proxy": "http://proxy:3128",
    "no_proxy": "localhost",
    "AWS_CA_BUNDLE": "/etc/ca.pem",
    "REQUESTS_CA_BUNDLE": "/etc/ca.pem",
    "SSL_CERT_FILE": "/etc/ca.pem",
    "SSL_CERT_DIR": "/etc/ssl/certs",
    "READ_OPERATIONS_ONLY": "true",
    "REQUIRE_MUTATION_CONSENT": "false",
    "AWS_API_MCP_WORKING_DIR": "/tmp/w",
    "UV_INDEX_URL": "https://mirror/simple",
}


def test_a_real_upstream_gets_the_proxy_ca_bundle_uv_and_its_own_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upstream_command="uvx")
    env = upstream_env(settings, {**PASSED_THROUGH, "GITHUB_TOKEN": "no", "PYTHONPATH": "/x"})
    assert {k: env[k] for k in PASSED_THROUGH} == PASSED_THROUGH
    assert "GITHUB_TOKEN" not in env
    assert "PYTHONPATH" not in env


def test_upstream_env_setting_adds_variables_and_wins_over_the_environment(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, upstream_command="uvx", upstream_env={"FASTMCP_LOG_LEVEL": "ERROR", "NO_PROXY": "*"}
    )
    env = upstream_env(settings, {"NO_PROXY": "localhost"})
    assert env["FASTMCP_LOG_LEVEL"] == "ERROR"
    assert env["NO_PROXY"] == "*"


def test_upstream_env_setting_is_read_as_a_json_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRA_MCP_UPSTREAM_ENV", '{"READ_OPERATIONS_ONLY": "true"}')
    assert Settings(data_dir=tmp_path).upstream_env == {"READ_OPERATIONS_ONLY": "true"}


async def test_a_read_only_upstream_says_so_in_its_status_and_refuses_changes_up_front(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upstream_command="uvx", upstream_env={"READ_OPERATIONS_ONLY": "True"})
    upstream = make_upstream(settings, environ={})
    refusal = upstream.change_refusal()
    assert refusal is not None
    assert refusal.code == "AWS_MCP_004"
    assert refusal.details["reason"] == "read_only"


async def test_an_upstream_that_asks_consent_per_change_refuses_changes_up_front(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upstream_command="uvx")
    upstream = make_upstream(settings, environ={"REQUIRE_MUTATION_CONSENT": "true"})
    refusal = upstream.change_refusal()
    assert refusal is not None
    assert refusal.details["reason"] == "mutation_consent"


async def test_an_upstream_with_default_settings_takes_changes(tmp_path: Path) -> None:
    assert make_upstream(Settings(data_dir=tmp_path, upstream_command="uvx"), environ={}).change_refusal() is None
