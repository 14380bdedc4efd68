"""Start the real AWS API MCP server offline (run by the upstream's own interpreter, not infra-mcp's).

Its ``ServiceReferenceUrlsByService`` downloads AWS's service reference list at start-up; here it
is an empty map instead, so the server starts with no internet.
"""

import os

from awslabs.aws_api_mcp_server.core.metadata import read_only_operations_list  # type: ignore[import-not-found]


def _offline(self: dict[str, str]) -> None:
    dict.__init__(self)


read_only_operations_list.ServiceReferenceUrlsByService.__init__ = _offline

# Fault tests kill or stop "the upstream": each start says which process that is now.
if pidfile := os.environ.get("INFRA_MCP_TEST_UPSTREAM_PIDFILE"):
    with open(pidfile, "a") as out:
        out.write(f"{os.getpid()}\n")

from awslabs.aws_api_mcp_server.server import main  # type: ignore[import-not-found]  # noqa: E402 - after the patch

main()
