"""Make simulated resources look like the registry schema says they look.

Pure functions over a type's :class:`~infra_mcp.catalog.ResourceTypeInfo`: validate a desired
state (``jsonschema`` against the type's own schema and definitions), generate primary
identifiers and read-only attributes, and strip write-only properties. Nothing here is
hand-written per type except a small table of EC2 id prefixes, which the schemas only hint at.
"""

from __future__ import annotations

import copy
import re
import secrets
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jsonschema  # ships no type information (mypy: see pyproject overrides)
from jsonschema.exceptions import ValidationError

from infra_mcp.catalog import ResourceTypeInfo
from infra_mcp.sandbox.identity import SANDBOX_ACCOUNT_ID, SANDBOX_DNS_SUFFIX, arn_for

# EC2 hands out ids as "<prefix>-<17 hex>"; the prefix depends on the kind of thing.
_EC2_PREFIXES: dict[str, str] = {
    "vpc": "vpc",
    "subnet": "subnet",
    "securitygroup": "sg",
    "group": "sg",
    "defaultsecuritygroup": "sg",
    "instance": "i",
    "internetgateway": "igw",
    "egressonlyinternetgateway": "eigw",
    "routetable": "rtb",
    "subnetroutetableassociation": "rtbassoc",
    "natgateway": "nat",
    "networkacl": "acl",
    "defaultnetworkacl": "acl",
    "networkaclassociation": "aclassoc",
    "eip": "eipalloc",
    "allocation": "eipalloc",
    "eipassociation": "eipassoc",
    "volume": "vol",
    "image": "ami",
    "keypair": "key",
    "launchtemplate": "lt",
    "networkinterface": "eni",
    "transitgateway": "tgw",
    "transitgatewayattachment": "tgw-attach",
    "vpcendpoint": "vpce",
    "dhcpoptions": "dopt",
    "vpcpeeringconnection": "pcx",
    "customergateway": "cgw",
    "vpngateway": "vgw",
    "prefixlist": "pl",
    "flowlog": "fl",
    "securitygroupingress": "sgr",
    "securitygroupegress": "sgr",
    "cidrblockassociation": "vpc-cidr-assoc",
}
_FORMAT_TYPE = re.compile(r"^AWS::(?P<service>\w+)::(?P<type>\w+)\.(?:Id|GroupId)$")
_MAX_MESSAGES = 5
# How Cloud Control's (Java) model validation names JSON types in its messages.
_JSON_NAMES: dict[type, str] = {
    str: "String",
    int: "Integer",
    float: "Number",
    bool: "Boolean",
    list: "JSONArray",
    dict: "JSONObject",
    type(None): "Null",
}


def random_hex(length: int) -> str:
    """``length`` lowercase hex digits from the OS's randomness (ids must not collide across processes)."""
    return secrets.token_hex((length + 1) // 2)[:length]


def _initials(short_name: str) -> str:
    """``TransitGatewayMulticastDomain`` -> ``tgmd``: a prefix for types the table does not know."""
    capitals = re.findall(r"[A-Z]", short_name)
    return ("".join(capitals) if len(capitals) > 1 else short_name[:8]).lower()


def _ec2_prefix(stem: str, fallback_type: str) -> str:
    return _EC2_PREFIXES.get(stem.lower()) or _initials(fallback_type)


def generated_id(type_name: str, stem: str | None = None) -> str:
    """An EC2-style id, ``vpc-0a1b2c3d4e5f60718``; ``stem`` names the kind when it is not the type itself."""
    short = type_name.split("::")[-1]
    return f"{_ec2_prefix(stem or short, short)}-{random_hex(17)}"


def generated_name(type_name: str) -> str:
    """A name for a resource whose name the user did not give (lowercase: S3 insists)."""
    short = type_name.split("::")[-1].lower()
    return f"sandbox-{short}-{random_hex(12)}"


def _json_type(info: ResourceTypeInfo, definition: dict[str, Any]) -> str:
    resolved = info.resolve(definition)
    kind = resolved.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None:
        kind = "object" if "properties" in resolved else "array" if "items" in resolved else "string"
    return str(kind)


def _value_for(
    info: ResourceTypeInfo,
    name: str,
    definition: dict[str, Any],
    *,
    region: str,
    identifier: str,
    now: datetime,
) -> Any:
    """A plausible value for a read-only (or unset identifier) property called ``name``."""
    resolved = info.resolve(definition)
    kind = _json_type(info, definition)
    lowered = name.lower()
    enum = resolved.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]  # a value the schema allows, so an update validating the model accepts it
    if kind == "array":
        if lowered == "cidrblockassociations":
            return [generated_id(info.type_name, "cidrblockassociation")]
        return []
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return 5432 if lowered == "port" else 0
    if lowered == "port":
        return "5432"
    if kind == "object":
        return {}
    hint = resolved.get("format")
    if isinstance(hint, str) and (match := _FORMAT_TYPE.match(hint)):
        if match["service"] == "EC2":
            return generated_id(f"AWS::EC2::{match['type']}")
        return f"{_initials(match['type'])}-{random_hex(17)}"
    if info.service == "EC2" and lowered in _EC2_PREFIXES:
        return generated_id(info.type_name, name)
    resource = _last_segment(identifier)
    if lowered == "arn" or lowered.endswith("arn"):
        return identifier if identifier.startswith("arn:") else arn_for(info.type_name, region, resource)
    if lowered.endswith(("url", "uri")):
        return f"https://{info.service.lower()}.{region}.{SANDBOX_DNS_SUFFIX}/{SANDBOX_ACCOUNT_ID}/{resource}"
    if lowered.endswith(("dnsname", "domainname", "address", "endpoint", "hostname")):
        host = re.sub(r"[^a-z0-9-]", "-", resource.lower())
        return f"{host}.{info.service.lower()}.{region}.{SANDBOX_DNS_SUFFIX}"
    if lowered.endswith(("ip", "ipaddress")):
        # TEST-NET-2 (RFC 5737) for public addresses: documentation-only, never routable.
        return "198.51.100.10" if "public" in lowered else "10.0.0.10"
    if lowered.endswith(("time", "date")) or lowered in ("createdat", "updatedat"):
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if lowered in ("state", "status") or lowered.endswith("status"):
        return "available"
    if lowered.endswith("id") and info.service == "EC2":
        return generated_id(info.type_name, name[:-2] or None)
    if lowered.endswith("id"):
        return f"{_initials(name[:-2] or info.short_name)}-{random_hex(17)}"
    if lowered.endswith(("name", "identifier")):
        return generated_name(info.type_name)
    return f"{lowered}-{random_hex(8)}"


def _last_segment(identifier: str) -> str:
    """The resource's own name inside an ARN or URL identifier (or the identifier itself)."""
    if identifier.startswith("arn:") or "://" in identifier:
        return re.split(r"[/:]", identifier)[-1]
    return identifier


def _given_name(info: ResourceTypeInfo, model: dict[str, Any]) -> str:
    """The name the user gave the resource (``QueueName``, ``TopicName``, ``Name``), or a generated one."""
    for key in (f"{info.short_name}Name", "Name"):
        if isinstance(model.get(key), str) and model[key]:
            return str(model[key])
    return generated_name(info.type_name)


def _identifier_value(info: ResourceTypeInfo, name: str, region: str, model: dict[str, Any]) -> str:
    """A fresh value for one primary-identifier property the user did not give."""
    lowered = name.lower()
    definition = info.properties.get(name, {})
    if lowered.endswith("arn"):
        return arn_for(info.type_name, region, _given_name(info, model))
    if lowered.endswith(("url", "uri")):
        return f"https://{info.service.lower()}.{region}.{SANDBOX_DNS_SUFFIX}/{SANDBOX_ACCOUNT_ID}/{_given_name(info, model)}"
    if lowered.endswith(("name", "identifier")) or (
        info.service != "EC2" and not lowered.endswith("id") and _json_type(info, definition) == "string"
    ):
        return generated_name(info.type_name)
    stem = name[:-2] if lowered.endswith("id") and len(name) > 2 else None
    # "Id" alone (SecurityGroup, many others) names the type itself.
    return generated_id(info.type_name, stem if stem and info.service == "EC2" else None)


def assign_identifier(info: ResourceTypeInfo, properties: dict[str, Any], region: str) -> tuple[str, dict[str, Any]]:
    """Pick the primary identifier of a resource about to be created.

    A user-given identifier property (a bucket name, a role name) is kept; a missing one is
    generated. Compound identifiers are joined with ``|`` as Cloud Control does.

    Returns:
        The identifier and a copy of ``properties`` holding every identifier property.
    """
    model = copy.deepcopy(properties)
    parts: list[str] = []
    for name in info.primary_identifier or ["Id"]:
        top = name.split("/")[0]
        value = model.get(top)
        # A read-only identifier (VpcId) is AWS's to choose, whatever the caller sent.
        if value is None or isinstance(value, dict | list) or top in info.read_only_properties:
            value = _identifier_value(info, top, region, model)
            model[top] = value
        parts.append(str(value))
    # A name the caller left out (NodegroupName, QueueName) is one AWS generates and reports back.
    own_name = f"{info.short_name}Name"
    if own_name in info.properties and model.get(own_name) is None and own_name not in info.write_only_properties:
        # An ARN or URL identifier was made from that name: report the same one.
        made_from_name = len(parts) == 1 and (parts[0].startswith("arn:") or "://" in parts[0])
        model[own_name] = _last_segment(parts[0]) if made_from_name else generated_name(info.type_name)
    return "|".join(parts), model


def fill_read_only(
    info: ResourceTypeInfo, model: dict[str, Any], *, region: str, identifier: str, now: datetime
) -> dict[str, Any]:
    """Return ``model`` with every top-level read-only attribute AWS would set.

    Nested read-only attributes of a read-only object (``Endpoint/Address``) are filled too;
    identifier properties already in ``model`` are left alone.
    """
    filled = copy.deepcopy(model)
    paths = info.read_only_properties
    for path in paths:
        if "/" in path or path in filled:
            continue
        definition = info.properties.get(path, {})
        value = _value_for(info, path, definition, region=region, identifier=identifier, now=now)
        if isinstance(value, dict):
            sub = info.resolve(definition).get("properties", {})
            for child in sub:
                if f"{path}/{child}" in paths:
                    value[child] = _value_for(info, child, sub[child], region=region, identifier=identifier, now=now)
        filled[path] = value
    # Aliases of the identifier (SecurityGroup's GroupId next to Id) must agree with it.
    if len(info.primary_identifier) == 1:
        primary = info.primary_identifier[0]
        for alias in (f"{info.short_name}Id", "GroupId", "Id"):
            if alias != primary and alias in paths and alias in filled and primary in info.read_only_properties:
                filled[alias] = filled[primary]
    return filled


def _segments_match(path: list[str], pattern: list[str]) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == s for s, p in zip(path, pattern, strict=True))


def strip_paths(model: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """A copy of ``model`` without the values at ``paths`` (``/``-separated, ``*`` = any array item)."""
    result = copy.deepcopy(model)
    for path in paths:
        _remove(result, path.split("/"))
    return result


def _remove(node: Any, segments: list[str]) -> None:
    head, rest = segments[0], segments[1:]
    children: list[Any]
    if isinstance(node, dict):
        if not rest:
            node.pop(head, None)
            return
        children = [node[head]] if head in node else []
    elif isinstance(node, list) and head == "*":
        if not rest:
            node.clear()
            return
        children = node
    else:
        return
    for child in children:
        _remove(child, rest)


def value_at(model: dict[str, Any], path: str) -> Any:
    """The value at a ``/``-separated path (``*`` segments yield the list of matches), or None."""
    nodes: list[Any] = [model]
    for segment in path.split("/"):
        found: list[Any] = []
        for node in nodes:
            if segment == "*" and isinstance(node, list):
                found.extend(node)
            elif isinstance(node, dict) and segment in node:
                found.append(node[segment])
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                found.append(node[int(segment)])
        nodes = found
    if not nodes:
        return None
    return nodes if "*" in path.split("/") else nodes[0]


@lru_cache(maxsize=256)
def _validator(info: ResourceTypeInfo, for_update: bool) -> jsonschema.Draft7Validator:
    schema = info.schema
    # Read-only values are AWS's to set, and write-only ones are not kept after create, so
    # neither can be demanded of a model.
    exempt = set(info.read_only_properties)
    if for_update:
        exempt |= set(info.write_only_properties)
    root: dict[str, Any] = {
        "type": "object",
        "properties": schema.get("properties", {}),
        "definitions": schema.get("definitions", {}),
        "required": [name for name in schema.get("required", []) if name not in exempt],
    }
    if "additionalProperties" in schema:
        root["additionalProperties"] = schema["additionalProperties"]
    for keyword in ("oneOf", "anyOf", "allOf", "dependencies", "patternProperties"):
        if keyword in schema and not for_update:
            root[keyword] = schema[keyword]
    return jsonschema.Draft7Validator(root)


def _describe(error: ValidationError) -> str:
    """Phrase one violation the way Cloud Control's model validation does, naming the property."""
    where = "#" + "".join(f"/{part}" for part in error.absolute_path)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return f"{where}: required key [{missing[0] if missing else error.message}] not found"
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        return f"{where}: extraneous key [{', '.join(extra) or '?'}] is not permitted"
    if error.validator == "type":
        expected = error.validator_value
        names = expected if isinstance(expected, list) else [expected]
        found = _JSON_NAMES.get(type(error.instance), type(error.instance).__name__)
        return f"{where}: expected type: {'/'.join(str(n).capitalize() for n in names)}, found: {found}"
    return f"{where}: {error.message}"


def validation_messages(info: ResourceTypeInfo, model: dict[str, Any], *, for_update: bool = False) -> list[str]:
    """Every schema violation of ``model``, phrased like AWS's ``Model validation failed`` details.

    A read-only property set by the caller is a violation too: AWS alone sets those.
    """
    messages: list[str] = []
    if not for_update:
        messages += [
            f"#: read-only property [{name}] cannot be set" for name in model if name in info.read_only_properties
        ]
    else:
        # The read-only values are AWS's own (here, the sandbox's); an update judges what the caller sets.
        model = strip_paths(model, info.read_only_properties)
    try:
        errors = sorted(_validator(info, for_update).iter_errors(model), key=lambda e: list(e.absolute_path))
    except Exception:
        # A registry pattern Python's re cannot compile, or a dangling $ref, is the schema's fault,
        # not the caller's: skip schema validation rather than fail every call for the type.
        errors = []
    messages += [_describe(error) for error in errors]
    return messages[:_MAX_MESSAGES]
