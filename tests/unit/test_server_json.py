"""server.json (the MCP registry manifest) is valid against the vendored official schema.

Offline: the 2025-12-11 schema is vendored in tests/data (see tests/data/README.md) and
pinned by sha256, so CI needs no network.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, FormatChecker

from infra_mcp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVER_JSON = ROOT / "server.json"
SCHEMA_PATH = ROOT / "tests" / "data" / "server.schema.2025-12-11.json"
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
# sha256 of the live file at SCHEMA_URL (see tests/data/README.md).
SCHEMA_SHA256 = "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"
ENV_PREFIX = "INFRA_MCP_"

# RFC 3986: scheme ":" then only URI characters, with well-formed percent-escapes.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_HTTP_URI = re.compile(r"https?://[^/?#\s]+.*", re.IGNORECASE)


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats only constrain strings
    if not _URI.fullmatch(value):
        return False
    return not value.lower().startswith(("http:", "https:")) or bool(_HTTP_URI.fullmatch(value))


def format_checker() -> FormatChecker:
    # jsonschema checks "uri" only when rfc3987 is installed, and silently passes otherwise:
    # use an explicit checker so the result does not depend on optional extras.
    checker = FormatChecker()
    checker.checks("uri")(_is_uri)
    return checker


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_bytes())


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft7Validator:
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=format_checker())


@pytest.fixture(scope="module")
def server() -> dict[str, Any]:
    return json.loads(SERVER_JSON.read_text(encoding="utf-8"))


def errors(validator: Draft7Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}" for e in validator.iter_errors(doc)]


def pypi_package(server: dict[str, Any]) -> dict[str, Any]:
    packages = [p for p in server.get("packages", []) if p.get("registryType") == "pypi"]
    assert len(packages) == 1, f"expected exactly one pypi package, got {packages}"
    return packages[0]


def test_vendored_schema_is_the_pinned_2025_12_11_text(schema: dict[str, Any]) -> None:
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert schema["$id"] == SCHEMA_URL


def test_server_json_is_valid_against_the_official_schema(validator: Draft7Validator, server: dict[str, Any]) -> None:
    assert errors(validator, server) == []


def test_server_json_declares_the_2025_12_11_schema(server: dict[str, Any]) -> None:
    assert server["$schema"] == SCHEMA_URL


def test_version_matches_pyproject(server: dict[str, Any]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert server["version"] == version
    assert pypi_package(server)["version"] == version


def test_pypi_package_runs_with_uvx_over_stdio(server: dict[str, Any]) -> None:
    package = pypi_package(server)
    assert package["identifier"] == "infra-mcp-server"
    assert package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}


def test_environment_variables_are_settings_fields_or_aws(server: dict[str, Any]) -> None:
    names = [variable["name"] for variable in pypi_package(server).get("environmentVariables", [])]
    assert names, "server.json declares no environment variables"
    assert len(names) == len(set(names)), f"duplicates in {names}"
    assert Settings.model_config.get("env_prefix") == ENV_PREFIX
    unknown = [
        name
        for name in names
        if not name.startswith("AWS_")
        and not (name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX).lower() in Settings.model_fields)
    ]
    assert unknown == [], f"not Settings fields ({ENV_PREFIX}*) nor AWS_*: {unknown}"


def test_declared_defaults_and_choices_agree_with_settings(server: dict[str, Any]) -> None:
    for variable in pypi_package(server).get("environmentVariables", []):
        name = variable["name"]
        if not name.startswith(ENV_PREFIX):
            continue
        field = Settings.model_fields[name.removeprefix(ENV_PREFIX).lower()]
        if "default" in variable:
            assert variable["default"] == str(field.default), name
        if "choices" in variable:
            assert typing.get_origin(field.annotation) is typing.Literal, name
            assert list(variable["choices"]) == list(typing.get_args(field.annotation)), name


def test_readme_carries_the_mcp_name_marker(server: dict[str, Any]) -> None:
    # The registry proves PyPI ownership by finding this marker in the package description.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"mcp-name: {server['name']}" in readme


def _without_version(doc: dict[str, Any]) -> None:
    del doc["version"]


def _name_without_slash(doc: dict[str, Any]) -> None:
    doc["name"] = doc["name"].replace("/", ".")


def _description_too_long(doc: dict[str, Any]) -> None:
    doc["description"] = "x" * 101


def _repository_url_not_a_uri(doc: dict[str, Any]) -> None:
    doc["repository"] = {"url": "not a uri", "source": "github"}


def _package_without_transport(doc: dict[str, Any]) -> None:
    del doc["packages"][0]["transport"]


def _unknown_transport(doc: dict[str, Any]) -> None:
    doc["packages"][0]["transport"] = {"type": "carrier-pigeon"}


def _package_version_latest(doc: dict[str, Any]) -> None:
    doc["packages"][0]["version"] = "latest"


@pytest.mark.parametrize(
    "breakage",
    [
        _without_version,
        _name_without_slash,
        _description_too_long,
        _repository_url_not_a_uri,
        _package_without_transport,
        _unknown_transport,
        _package_version_latest,
    ],
)
def test_broken_copies_fail_validation(validator: Draft7Validator, server: dict[str, Any], breakage: Any) -> None:
    broken = copy.deepcopy(server)
    breakage(broken)
    assert errors(validator, broken), f"{breakage.__name__}: a broken server.json passed validation"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (SCHEMA_URL, True),
        ("https://pypi.org", True),
        ("urn:isbn:0451450523", True),
        ("https://example.com/a%20b", True),
        ("not a uri", False),
        ("example.com/path", False),
        ("https://", False),
        ("https://example.com/a b", False),
        ("https://example.com/%zz", False),
    ],
)
def test_uri_format_checker(value: str, valid: bool) -> None:
    assert format_checker().conforms(value, "uri") is valid
