"""Build ``aws`` CLI command lines for the ``call_aws`` dialect, safely.

Every parameter is an explicit ``--flag value`` pair, or ``--flag=value`` for a value starting with
'-' (the upstream refuses ``--cli-input-json``),
and every value is quoted with :func:`shlex.quote`, so that whatever a value contains (quotes,
``;``, ``$(...)``, newlines, a second ``--endpoint-url``) the upstream's ``shlex.split`` gives it
back as exactly one argument, equal to the original.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from infra_mcp.errors import ValidationFailed

_SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_OPERATION = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_PARAM = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")


def compact_json(value: Any) -> str:
    """Serialise ``value`` as compact JSON (ASCII only, so nothing can break the transport's encoding)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def kebab(name: str) -> str:
    """``DesiredState`` -> ``desired-state``, ``GetResourceRequestStatus`` -> ``get-resource-request-status``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def validate_region(region: str) -> str:
    """Return ``region`` if it looks like an AWS region name.

    Raises:
        ValidationFailed: VALIDATION_001 otherwise.
    """
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ValidationFailed(
            f"{region!r} is not an AWS region name. Use one like 'us-east-1'.",
            details={"field": "region"},
        )
    return region


def _flag_value(name: str, value: Any) -> str:
    text = value if isinstance(value, str) else compact_json(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(
            f"Parameter {name} contains characters that cannot be encoded (lone surrogates). Remove them, or "
            "send the text as proper Unicode.",
            details={"field": name},
        ) from None
    return text


def _flag(name: str, value: Any) -> list[str]:
    """``--flag value`` as command-line words, or one ``--flag=value`` word for a value starting with '-'.

    argparse on the upstream reads a separate word starting with '-' as another option, whatever
    the quoting, so an identifier like ``-dash-param`` (a valid SSM parameter name) goes glued to its
    flag, which argparse (and so the AWS CLI) always reads as that flag's value.
    """
    text = _flag_value(name, value)
    if text.startswith("-"):
        return [f"--{kebab(name)}={shlex.quote(text)}"]
    return [f"--{kebab(name)}", shlex.quote(text)]


def build_cli_command(service: str, operation: str, params: Mapping[str, Any], *, region: str) -> str:
    """Build ``aws <service> <operation> --flag value ... --region R``.

    Args:
        service: CLI service name, e.g. ``cloudcontrol``.
        operation: API operation in PascalCase, e.g. ``CreateResource``.
        params: API parameters in PascalCase; ``None`` values are left out, strings go as they are,
            anything else as compact JSON.
        region: AWS region.

    Raises:
        ValidationFailed: VALIDATION_001 for a value the upstream could misread.
    """
    if not _SERVICE.fullmatch(service) or not _OPERATION.fullmatch(operation):
        raise ValidationFailed(
            f"Not an AWS operation: {service} {operation}. Use a CLI service name like 'cloudcontrol' and a "
            "PascalCase operation like 'GetResource'.",
            details={"field": "operation"},
        )
    parts = ["aws", service, kebab(operation)]
    for name, value in params.items():
        if value is None:
            continue
        if not _PARAM.fullmatch(name):
            raise ValidationFailed(
                f"Not an AWS parameter name: {name!r}. Use the API's PascalCase names, like 'TypeName'.",
                details={"field": "params"},
            )
        parts += _flag(name, value)
    parts += ["--region", shlex.quote(validate_region(region))]
    return " ".join(parts)
