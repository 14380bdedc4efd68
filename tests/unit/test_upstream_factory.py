"""Wiring the upstream from settings: which server, which environment, what status may show."""

from __future__ import annotations

import sys
from pathlib import Path

from mcp import StdioServerParameters

from infra_mcp.settings import Settings
from infra_mcp.upstream.factory import (
    describe_target,
    make_dialect,
    make_upstream,
    redact_args,
    redact_url,
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
    params = up._transport._factory().server  # type: ignore[attr-defined]
    assert isinstance(params, StdioServerParameters)
    assert (params.command, params.args) == (sys.executable, ["-m", "infra_mcp.sandbox"])
    await up.aclose()


def test_the_dialect_and_its_tool_follow_settings(tmp_path: Path) -> None:
    assert make_dialect(Settings(data_dir=tmp_path)).tool == "call_aws"
    run_script = make_dialect(Settings(data_dir=tmp_path, upstream_dialect="run_script"))
    assert (run_script.name, run_script.tool, run_script.experimental) == ("run_script", "aws___run_script", True)
    assert make_dialect(Settings(data_dir=tmp_path, upstream_tool="aws___call_aws")).tool == "aws___call_aws"
