"""Read an ``aws <service> <operation> --flag value ...`` command line the way the AWS API MCP server does.

The line is split with :func:`shlex.split` (POSIX rules), so a value quoted with
:func:`shlex.quote` comes back as exactly one argument whatever it contains. Every parameter is an
explicit flag; ``--cli-input-json`` is not read (the real server ignores it too and then reports the
required parameters as missing, which is what callers have learnt to expect).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")
_COMMON = ("role-arn", "type-version-id")


@dataclass(frozen=True)
class OperationSpec:
    """One CLI operation: its API name and the flags it takes (besides the global ones)."""

    api_name: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    full_name: str
    operations: dict[str, OperationSpec]


SERVICES: dict[str, ServiceSpec] = {
    "cloudcontrol": ServiceSpec(
        "AWS Cloud Control API",
        {
            "create-resource": OperationSpec(
                "CreateResource", ("type-name", "desired-state"), ("client-token", *_COMMON)
            ),
            "get-resource": OperationSpec("GetResource", ("type-name", "identifier"), _COMMON),
            "update-resource": OperationSpec(
                "UpdateResource", ("type-name", "identifier", "patch-document"), ("client-token", *_COMMON)
            ),
            "delete-resource": OperationSpec("DeleteResource", ("type-name", "identifier"), ("client-token", *_COMMON)),
            "list-resources": OperationSpec(
                "ListResources", ("type-name",), ("next-token", "max-results", "resource-model", *_COMMON)
            ),
            "get-resource-request-status": OperationSpec("GetResourceRequestStatus", ("request-token",)),
        },
    ),
    "sts": ServiceSpec("AWS Security Token Service", {"get-caller-identity": OperationSpec("GetCallerIdentity")}),
}
_GLOBAL_FLAGS = ("region", "endpoint-url", "output", "cli-input-json")
_GLOBAL_SWITCHES = ("no-cli-pager", "no-paginate")


class CommandError(ValueError):
    """The command cannot be run; the message says why (it is shown to the caller as is)."""


@dataclass(frozen=True)
class ParsedCommand:
    """A command line understood: what to call, with which API parameters, where."""

    service: str
    service_full_name: str
    cli_operation: str
    operation: str
    region: str
    params: dict[str, Any] = field(default_factory=dict)


def _pascal(flag: str) -> str:
    return "".join(part.capitalize() for part in flag.split("-"))


_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$", re.ASCII)


def _is_flag(token: str) -> bool:
    # argparse reads "--name=value" as that flag whatever the value holds; otherwise a token with
    # whitespace is a value even if it starts with "--". So do we.
    name, has_inline, _ = token[2:].partition("=")
    if token.startswith("--") and has_inline and name and not any(c.isspace() for c in name):
        return True
    return token.startswith("--") and len(token) > 2 and not any(c.isspace() for c in token)


def _reads_as_option(token: str) -> bool:
    """Whether argparse (so the AWS CLI) reads a separate word as an option rather than a value.

    A word starting with '-' is an option unless it is a negative number or holds a space; such a
    value has to be passed glued to its flag: ``--identifier=-dash-param``.
    """
    return token.startswith("-") and len(token) > 1 and not _NEGATIVE_NUMBER.match(token) and " " not in token


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_flags(tokens: list[str], where: str) -> tuple[dict[str, str], set[str]]:
    values: dict[str, str] = {}
    switches: set[str] = set()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not _is_flag(token):
            raise CommandError(f"Unexpected argument {token!r} for {where}: every parameter must be a --flag.")
        name, has_inline, inline = token[2:].partition("=")
        if name in _GLOBAL_SWITCHES and not has_inline:
            switches.add(name)
            index += 1
            continue
        if has_inline:
            value = inline
            index += 1
        elif index + 1 < len(tokens) and not _reads_as_option(tokens[index + 1]):
            value = tokens[index + 1]
            index += 2
        else:
            raise CommandError(
                f"Option --{name} for {where} expects a value (a value starting with '-' goes as --{name}=value)."
            )
        if name in values:
            raise CommandError(f"Option --{name} was given more than once for {where}.")
        values[name] = value
    return values, switches


def parse_cli_command(cli_command: str, *, default_region: str) -> ParsedCommand:
    """Parse ``aws <service> <operation> --flag value ...``.

    Args:
        cli_command: The command line, as the ``call_aws`` tool receives it.
        default_region: Region used when the command has no ``--region``.

    Raises:
        CommandError: the command is not one the sandbox can run, with the reason.
    """
    try:
        tokens = shlex.split(cli_command)
    except ValueError as exc:
        raise CommandError(f"The command could not be split into arguments: {exc}.") from None
    if not tokens or tokens[0] != "aws":
        raise CommandError("The command must start with 'aws'.")
    if len(tokens) < 3 or _is_flag(tokens[1]) or _is_flag(tokens[2]):
        raise CommandError("The command must name a service and an operation: aws <service> <operation> --flag value.")
    service_name, cli_operation = tokens[1], tokens[2]
    service = SERVICES.get(service_name)
    if service is None:
        raise CommandError(
            f"The service {service_name!r} is not available in the infra-mcp sandbox "
            f"(available: {', '.join(sorted(SERVICES))})."
        )
    spec = service.operations.get(cli_operation)
    if spec is None:
        raise CommandError(
            f"{cli_operation!r} is not a {service_name} operation the infra-mcp sandbox offers "
            f"(available: {', '.join(sorted(service.operations))})."
        )
    where = f"{service_name} {cli_operation}"
    values, _switches = _read_flags(tokens[3:], where)
    allowed = {*spec.required, *spec.optional, *_GLOBAL_FLAGS}
    unknown = sorted(name for name in values if name not in allowed)
    if unknown:
        raise CommandError(f"Unknown option(s) for {where}: {', '.join('--' + n for n in unknown)}.")
    missing = [name for name in spec.required if not values.get(name)]
    if missing:
        hint = (
            " (--cli-input-json is not read: pass each parameter as its own flag)" if "cli-input-json" in values else ""
        )
        raise CommandError(
            f"The following parameters are missing for service '{service_name}' and operation '{cli_operation}': "
            f"'{', '.join('--' + n for n in missing)}'{hint}"
        )
    region = values.get("region", default_region)
    if not _REGION.fullmatch(region):
        raise CommandError(f"{region!r} is not a valid region name (expected something like 'us-east-1').")
    endpoint = values.get("endpoint-url")
    if endpoint is not None and not _is_loopback(endpoint):
        raise CommandError("--endpoint-url is only accepted for loopback addresses (localhost, 127.0.0.1, ::1).")
    output = values.get("output", "json")
    if output != "json":
        raise CommandError(f"--output {output} is not supported; results are always JSON.")
    params: dict[str, Any] = {
        _pascal(name): value for name, value in values.items() if name in spec.required or name in spec.optional
    }
    if "MaxResults" in params:
        try:
            params["MaxResults"] = int(params["MaxResults"])
        except ValueError:
            raise CommandError(f"--max-results expects an integer, not {params['MaxResults']!r}.") from None
    return ParsedCommand(service_name, service.full_name, cli_operation, spec.api_name, region, params)
