"""One frozen settings object, read from ``INFRA_MCP_*`` environment variables.

It is built once, by the server lifespan or the CLI, and handed down; nothing else
reads the environment.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

POSTGRES_SCHEMES = ("postgresql", "postgres")


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("infra-mcp", appauthor=False))


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
        return f"uid-{os.getuid()}"


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to ``INFRA_MCP_<FIELD>``."""

    # Errors never echo a value: INFRA_MCP_DATABASE_URL may hold a password.
    model_config = SettingsConfigDict(env_prefix="INFRA_MCP_", frozen=True, extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the SQLite database, local state and sandbox cloud live.",
    )
    state_location: str | None = Field(
        default=None,
        description="Default state location: a folder path, or s3://bucket/prefix. Default: <data_dir>/state.",
    )
    allowed_state_locations: list[str] = Field(
        default_factory=list,
        description="JSON list of folders and s3://bucket/prefix roots a project's state_location may point into, "
        "besides the default location. Anything else is refused.",
    )
    aws_region: str = Field(default="us-east-1", description="Region for the S3 state bucket and new projects.")
    aws_profile: str | None = Field(default=None, description="AWS profile used for the S3 state store.")
    s3_endpoint_url: str | None = Field(default=None, description="Custom S3 endpoint (moto, MinIO, ...).")
    s3_connect_timeout_seconds: float = Field(default=5.0, gt=0, description="S3 state store: connect timeout.")
    s3_read_timeout_seconds: float = Field(default=30.0, gt=0, description="S3 state store: read timeout.")
    s3_max_attempts: int = Field(
        default=3, ge=1, le=10, description="S3 state store: attempts per call (retries on throttling and errors)."
    )
    reconcile_deadline_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long one project's reconciliation (at start-up, in the background, or before its next "
        "call) may take before it is abandoned; the project's next call tries again.",
    )
    database_url: str | None = Field(
        default=None,
        description="postgresql://user:password@host:port/database selects a PostgreSQL project store, shared by "
        "several replicas. Empty: SQLite in the data dir (one machine).",
    )
    database_pool_size: int = Field(
        default=10, ge=1, le=200, description="PostgreSQL: connections each server process keeps at most."
    )
    user: str = Field(default_factory=_default_user, description="The acting user on stdio.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Upstream AWS MCP server. Empty command = the built-in sandbox.
    upstream_command: str | None = Field(
        default=None, description="Command that starts the upstream AWS MCP server (stdio). Empty: the sandbox."
    )
    upstream_args: list[str] = Field(default_factory=list, description="Arguments for upstream_command (JSON list).")
    upstream_url: str | None = Field(default=None, description="Streamable-HTTP URL of the upstream instead.")
    upstream_dialect: Literal["call_aws", "run_script"] = "call_aws"
    upstream_tool: str | None = Field(
        default=None, description="Tool name on the upstream (default: call_aws / aws___run_script by dialect)."
    )
    upstream_env: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object of extra environment variables for a stdio upstream (win over inherited ones).",
    )
    upstream_timeout_seconds: float = Field(default=60.0, gt=0, description="Patience for one attempt of a call.")
    upstream_call_deadline_seconds: float = Field(
        default=150.0,
        gt=0,
        description="Total patience for one upstream call, retries included (a hung upstream is replaced "
        "and the call retried within it).",
    )
    upstream_start_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a starting upstream has to complete the MCP handshake before its start counts as hung.",
    )
    sandbox_latency_ms: int = Field(default=0, ge=0, description="Sandbox: simulated latency per operation.")
    sandbox_read_latency_ms: int = Field(
        default=0, ge=0, description="Sandbox: time each read (GetResource, ListResources) takes."
    )
    sandbox_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sandbox_throttle_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sandbox_seed: int | None = None

    execution_parallelism: int = Field(default=10, ge=1, le=100)
    key_file: Path | None = Field(
        default=None,
        description="The server key (seals secrets, signs plans, approvals and the audit chain). "
        "Default: <data_dir>/secret.key, created 0600 on first use.",
    )

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in POSTGRES_SCHEMES:
            # Say which scheme was given, never the whole URL: it may hold a password.
            raise ValueError(
                f"INFRA_MCP_DATABASE_URL must start with postgresql:// (got {parts.scheme or 'no'} scheme); "
                "leave it unset to use SQLite in the data dir"
            )
        try:
            parts.port  # noqa: B018 - urllib checks the port when it is read
        except ValueError:
            raise ValueError(
                "INFRA_MCP_DATABASE_URL has a port that is not a number from 0 to 65535: write it as "
                "postgresql://user:password@host:5432/database"
            ) from None
        return value

    # Serving over streamable HTTP (`infra-mcp serve --http HOST:PORT`) and its OAuth 2.1 resource server.
    http_shutdown_grace_seconds: float = Field(
        default=300.0,
        gt=0,
        description="On SIGTERM/SIGINT, how long tool calls in flight (executions included) may take to finish "
        "before the server stops anyway.",
    )
    public_url: str | None = Field(
        default=None,
        description="The address clients reach this server at, e.g. https://infra.example.com (no /mcp). "
        "Default: http://HOST:PORT of the bind.",
    )
    auth_issuer: str | None = Field(
        default=None, description="OAuth issuer URL of the team's identity provider. Set: tokens are required."
    )
    auth_audience: str | None = Field(
        default=None, description="Expected token audience. Default: the public URL + /mcp (this resource's URI)."
    )
    auth_jwks_url: str | None = Field(
        default=None, description="The issuer's JWKS URL. Default: jwks_uri from the issuer's discovery document."
    )
    auth_user_claim: str = Field(default="sub", description="Token claim naming the acting user.")
    auth_required_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Scopes every token must carry (space- or comma-separated, or JSON list)."
    )
    auth_introspection_url: str | None = Field(
        default=None, description="RFC 7662 introspection endpoint: opaque (non-JWT) tokens are checked there."
    )
    auth_introspection_client_id: str | None = Field(default=None, description="Client id for introspection.")
    auth_introspection_client_secret: SecretStr | None = Field(
        default=None, description="Client secret for introspection."
    )
    server_url: str | None = Field(
        default=None,
        description="`infra-mcp plans ...` against a team server: its MCP URL (https://.../mcp) instead of a database.",
    )
    token: SecretStr | None = Field(
        default=None, description="`infra-mcp plans ...` against a team server: your bearer token."
    )
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")

    @field_validator("auth_required_scopes", mode="before")
    @classmethod
    def _scopes(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.replace(",", " ").split() if part]
        return value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_issuer)

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def key_path(self) -> Path:
        return (self.key_file or self.data_dir / "secret.key").expanduser()

    @property
    def database_path(self) -> Path:
        """The SQLite file (used when ``database_url`` is not set)."""
        return self.data_dir / "infra-mcp.sqlite3"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None

    @property
    def default_state_location(self) -> str:
        return self.state_location or str(self.data_dir / "state")

    @property
    def sandbox_world_path(self) -> Path:
        return self.data_dir / "sandbox" / "cloud.json"

    @property
    def uses_sandbox(self) -> bool:
        return not self.upstream_command and not self.upstream_url
