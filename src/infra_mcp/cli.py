"""The ``infra-mcp`` command: serve, demo, sandbox, the out-of-band ``plans`` commands, and ``db``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from infra_mcp import __version__
from infra_mcp.db_cli import add_db_parser

# Static text, not generated from Settings: `--help` must not import the server's dependencies.
SERVE_EPILOG = """\
environment (all optional):
  INFRA_MCP_DATA_DIR          project database, local state and sandbox (default: the user's data dir)
  INFRA_MCP_STATE_LOCATION    where state lives: a folder or s3://bucket/prefix
  INFRA_MCP_USER              the acting user (default: the OS login user)
  INFRA_MCP_UPSTREAM_COMMAND  command starting the upstream AWS MCP server (empty: the built-in sandbox)
  INFRA_MCP_UPSTREAM_ARGS     its arguments, as a JSON list
  INFRA_MCP_UPSTREAM_URL      streamable-HTTP URL of the upstream instead of a command
  INFRA_MCP_LOG_LEVEL         DEBUG | INFO | WARNING | ERROR (default INFO, to stderr)
  INFRA_MCP_AUTH_ISSUER       with --http: the identity provider whose tokens are required (see README)
  INFRA_MCP_PUBLIC_URL        with --http: the address clients use (default http://HOST:PORT)

connect a host, e.g. Claude Code:
  claude mcp add infra-mcp -- /path/to/checkout/.venv/bin/infra-mcp serve
  claude mcp add infra-mcp -- uvx infra-mcp-server serve      (once released on PyPI)

try it without a host: infra-mcp demo
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infra-mcp",
        description="MCP server for planned, human-approved, versioned AWS changes.",
    )
    parser.add_argument("--version", action="version", version=f"infra-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the MCP server on stdio (how agent hosts launch it), or over HTTP with --http",
        description="Run the infra-mcp MCP server on stdio. An MCP host (Claude Code, Claude Desktop,\n"
        "the MCP Inspector) starts this command and talks MCP over its stdin/stdout;\n"
        "logs go to stderr. It is configured by environment variables only.\n"
        "With --http HOST:PORT it serves MCP over streamable HTTP at /mcp instead: loopback\n"
        "only without INFRA_MCP_AUTH_ISSUER; with it, every call needs a bearer token.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp (e.g. 127.0.0.1:8000) instead of stdio",
    )
    demo = sub.add_parser("demo", help="a visible end-to-end run against the sandbox")
    demo.add_argument("--data-dir", help="keep the demo's data here (default: a fresh temporary folder)")
    demo.add_argument("--fast", action="store_true", help="no pauses between steps")
    sub.add_parser(
        "sandbox", help="the sandbox upstream (simulated Cloud Control); see 'infra-mcp sandbox --help'", add_help=False
    )
    plans = sub.add_parser(
        "plans",
        help="review and approve plans out of band, as a person in a terminal (you act as your OS login user)",
    )
    psub = plans.add_subparsers(dest="plans_command", metavar="ACTION", required=True)
    # No --user: the person acts as their OS login user (or, against a team server, as the user their
    # token names), and nothing on the command line changes that.
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument(
        "--server",
        metavar="URL",
        help="a team server's MCP URL (default: INFRA_MCP_SERVER_URL); you act as your token's user",
    )
    who.add_argument(
        "--token-file",
        metavar="PATH",
        help="with a team server: a file holding your bearer token (default: INFRA_MCP_TOKEN)",
    )
    plist = psub.add_parser("list", help="plans of a project", parents=[who])
    plist.add_argument("project_id")
    plist.add_argument("--status", help="only plans with this status, e.g. pending")
    psub.add_parser("pending", help="plans waiting for a person in your projects", parents=[who])
    pshow = psub.add_parser("show", help="a plan's diff, risk and cost", parents=[who])
    pshow.add_argument("plan_id")
    papprove = psub.add_parser(
        "approve", help="approve a plan: shows it and a one-time code to type (needs a terminal)", parents=[who]
    )
    papprove.add_argument("plan_id")
    papprove.add_argument("--comment", default="", help="your note for the audit log")
    papprove.add_argument(
        "--yes",
        action="store_true",
        help="no code: only for projects that do not require a person's confirmation",
    )
    preject = psub.add_parser("reject", help="reject a plan", parents=[who])
    preject.add_argument("plan_id")
    preject.add_argument("--reason", default="")
    add_db_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sandbox"]:
        # The sandbox has its own flags; hand them over untouched.
        from infra_mcp.sandbox.main import main as sandbox_main

        return sandbox_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "serve":
        if args.http:
            from infra_mcp.server.http import serve_http

            serve_http(args.http)
            return 0
        from infra_mcp.server.app import serve_stdio

        serve_stdio()
        return 0
    if args.command == "demo":
        from infra_mcp.demo import run_demo
        from infra_mcp.logs import configure_logging

        configure_logging("WARNING")

        return run_demo(data_dir=args.data_dir, fast=args.fast)
    if args.command == "plans":
        from infra_mcp.logs import configure_logging
        from infra_mcp.plans_cli import run_plans_command

        configure_logging("WARNING")  # the terminal is for the person; logs stay on stderr

        return run_plans_command(args)
    if args.command == "db":
        from infra_mcp.db_cli import run_db_command
        from infra_mcp.logs import configure_logging

        configure_logging("WARNING")
        return run_db_command(args)
    _parser().print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
