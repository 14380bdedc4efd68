"""Values starting with '-' (an SSM parameter named ``-dash-param``) reach the upstream as values, not flags."""

from __future__ import annotations

import argparse
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra_mcp.sandbox.commands import CommandError, parse_cli_command
from infra_mcp.upstream import operations as ops
from infra_mcp.upstream.commands import build_cli_command
from infra_mcp.upstream.run_script import RunScriptDialect
from tests.fakes.aws_mcp_servers import read_script_request

# Text the transport can carry: any unicode except lone surrogates (not encodable as UTF-8).
text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60)
dashed = st.builds(lambda rest: "-" + rest, st.text(st.characters(exclude_categories=("Cs",)), max_size=60))


def parse(command: str) -> dict[str, object]:
    return parse_cli_command(command, default_region="us-east-1").params


@settings(max_examples=150, deadline=None)
@given(identifier=text | dashed | st.sampled_from(["-dash-param", "--endpoint-url", "-1", "- x", "-", "--"]))
def test_any_identifier_including_a_leading_dash_is_read_back_exactly_by_the_sandbox(identifier: str) -> None:
    for operation in ("GetResource", "DeleteResource"):
        command = build_cli_command(
            "cloudcontrol", operation, {"TypeName": "AWS::SSM::Parameter", "Identifier": identifier}, region="us-east-1"
        )
        assert parse(command)["Identifier"] == identifier
        assert "EndpointUrl" not in parse(command)


def test_a_leading_dash_value_is_glued_to_its_flag() -> None:
    command = build_cli_command(
        "cloudcontrol",
        "GetResource",
        {"TypeName": "AWS::SSM::Parameter", "Identifier": "-dash-param"},
        region="us-east-1",
    )
    assert "--identifier=-dash-param" in shlex.split(command)


def _argparse_reads(words: list[str]) -> str | None:
    """What the real AWS CLI's argument parser (argparse) gives --identifier, or None if it refuses."""
    parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)
    parser.add_argument("--identifier", required=True)
    parser.add_argument("--type-name", required=True)
    try:
        known, extra = parser.parse_known_args(words)
    except (argparse.ArgumentError, SystemExit):
        return None
    return None if extra else str(known.identifier)


@pytest.mark.parametrize(
    "words",
    [
        ["--identifier=-dash-param"],
        ["--identifier", "-dash-param"],
        ["--identifier", "-12"],
        ["--identifier", "-a b"],
        ["--identifier=-a b"],
        ["--identifier=--x"],
        ["--identifier", "plain"],
        ["--identifier=a=b"],
    ],
)
def test_the_sandbox_reads_a_dash_value_the_way_the_aws_cli_argument_parser_does(words: list[str]) -> None:
    words = [*words, "--type-name", "AWS::SSM::Parameter"]
    expected = _argparse_reads(words)
    command = "aws cloudcontrol get-resource " + " ".join(shlex.quote(w) for w in words)
    if expected is None:
        with pytest.raises(CommandError):
            parse(command)
    else:
        assert parse(command)["Identifier"] == expected


def test_the_run_script_dialect_passes_a_leading_dash_identifier_unchanged() -> None:
    call = ops.delete_resource("AWS::SSM::Parameter", "-dash-param", region="us-east-1", client_token=None)
    request = read_script_request(RunScriptDialect().encode(call)["code"])
    assert request["params"]["Identifier"] == "-dash-param"
