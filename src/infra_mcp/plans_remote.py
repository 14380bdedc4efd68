"""``infra-mcp plans ...`` against a team server: over HTTP, as the person their token names.

With ``INFRA_MCP_SERVER_URL`` (or ``--server``) the commands do not open any database: they call the
team server's MCP tools with the person's bearer token (``INFRA_MCP_TOKEN``, or ``--token-file``),
and the server acts as the token's verified user. ``approve`` answers the server's approval prompt
at the person's terminal: it shows the prompt and a one-time code, and only the code typed back
approves (anything else declines), as in local mode.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitRequestParams, ElicitResult, TextResourceContents
from rich import box
from rich.table import Table

from infra_mcp.domain.text import COMMENT_MAX, clean_untrusted
from infra_mcp.plans_cli import _normalise, _open_terminal, _Terminal, console, err, new_code
from infra_mcp.server.http import is_loopback

_TIMEOUT = httpx2.Timeout(30, read=600)


class RemoteFailed(Exception):
    """A tool or resource answered with an error: its code and message, for the person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def read_token(token: str | None, token_file: str | None) -> str | None:
    """The bearer token: from ``--token-file`` (first line), else ``INFRA_MCP_TOKEN``."""
    if token_file:
        text = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
        return text.splitlines()[0].strip() if text else None
    return token.strip() if token else None


def _failure(text: str) -> RemoteFailed:
    try:
        payload = json.loads(text)
    except ValueError:
        return RemoteFailed("ERROR", text[:500])
    if isinstance(payload, dict) and "code" in payload:
        return RemoteFailed(str(payload["code"]), str(payload.get("message", "")))
    return RemoteFailed("ERROR", text[:500])


class Remote:
    """An MCP client of the team server, acting as the token's user."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        if result.is_error or result.structured_content is None:
            text = "".join(getattr(part, "text", "") for part in result.content)
            raise _failure(text)
        return dict(result.structured_content)

    async def read(self, uri: str) -> str:
        try:
            result = await self.client.read_resource(uri)
        except MCPError as exc:
            raise _failure(exc.error.message) from None
        return "".join(c.text for c in result.contents if isinstance(c, TextResourceContents))


@asynccontextmanager
async def connect(url: str, token: str, terminal: _Terminal | None = None) -> AsyncIterator[Remote]:
    """Connect to the team server; ``terminal`` answers its approval prompts (none: every prompt declines)."""

    async def on_prompt(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        if terminal is None:
            return ElicitResult(action="decline")
        note = await anyio.to_thread.run_sync(_ask_on, terminal, params.message)
        if note is None:
            return ElicitResult(action="accept", content={"approve": False, "comment": "wrong or no code typed"})
        return ElicitResult(action="accept", content={"approve": True, "comment": note})

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=_TIMEOUT) as http,
        Client(streamable_http_client(url, http_client=http), elicitation_callback=on_prompt) as client,
    ):
        yield Remote(client)


def _ask_on(tty: _Terminal, message: str) -> str | None:
    """Show the server's prompt and a one-time code on the terminal; the person's note, or None for no."""
    code = new_code()
    tty.writer.write(message + "\n")
    tty.writer.write(f"\nTo approve, type this code: {code}\nCode (anything else declines): ")
    tty.writer.flush()
    answer = tty.reader.readline()
    if not answer or _normalise(answer) != _normalise(code):
        return None
    tty.writer.write("Optional note for the audit log (Enter to skip): ")
    tty.writer.flush()
    return clean_untrusted(tty.reader.readline(), COMMENT_MAX)


def run_remote(args: argparse.Namespace, url: str, token: str | None) -> int:
    """Run one ``plans`` command against the team server at ``url``; the exit status."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        err.print(f"The team server URL must be https://HOST/mcp, got {url[:200]!r}. Pass it like that.", markup=False)
        return 2
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        err.print(
            f"Refusing to send your token to {parts.hostname} over plain http: anyone on the way could read it. "
            "Use the server's https:// address.",
            markup=False,
        )
        return 2
    if not token:
        err.print(
            "No token: a team server needs your bearer token. Set INFRA_MCP_TOKEN, or pass --token-file with a file "
            "holding it (get one from your identity provider, e.g. with your usual login tool).",
            markup=False,
        )
        return 2
    try:
        return anyio.run(_dispatch, args, url, token)
    except RemoteFailed as failed:
        err.print(f"{failed.code}: {failed.message}", markup=False)
        return 1
    except (httpx2.HTTPError, MCPError, OSError) as exc:
        err.print(
            f"Cannot talk to the team server at {url}: {type(exc).__name__}: {str(exc)[:300]}. Check the URL and "
            "that your token is valid (an expired token is refused).",
            markup=False,
        )
        return 1


async def _dispatch(args: argparse.Namespace, url: str, token: str) -> int:
    command = args.plans_command
    if command == "approve":
        tty = _open_terminal()
        if tty is None:
            err.print(
                "Refusing to approve: no interactive terminal. A person approves by running this command in their own "
                "terminal and typing the one-time code it shows there.",
                markup=False,
            )
            return 2
        with tty:
            async with connect(url, token, tty) as remote:
                return await _approve(remote, args.plan_id, args.comment)
    async with connect(url, token) as remote:
        if command == "list":
            return await _list(remote, args.project_id, args.status)
        if command == "pending":
            return await _pending(remote)
        if command == "show":
            return await _show(remote, args.plan_id)
        return await _reject(remote, args.plan_id, args.reason)


async def _list(remote: Remote, project_id: str, status: str | None) -> int:
    arguments: dict[str, Any] = {"project_id": project_id}
    if status:
        arguments["status"] = status
    listed = await remote.call("list_plans", arguments)
    table = Table("plan", "status", "risk", "summary", "by", title=project_id, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in table.columns:
        column.no_wrap = True
    for plan in listed["plans"]:
        table.add_row(
            plan["plan_id"],
            plan["status"],
            plan["risk"],
            clean_untrusted(plan["summary"], 80),
            clean_untrusted(plan["author"], 64),
        )
    console.print(table)
    return 0


async def _pending(remote: Remote) -> int:
    document = json.loads(await remote.read("infra://plans/pending"))
    table = Table("plan", "project", "risk", "summary", "by", "you may approve", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in table.columns:
        column.no_wrap = True
    for plan in document["plans"]:
        table.add_row(
            plan["plan_id"],
            plan["project_id"],
            plan["risk"],
            clean_untrusted(plan["summary"], 80),
            clean_untrusted(plan["author"], 64),
            "yes" if plan["you_may_approve"] else "no (someone else)",
        )
    console.print(table, markup=False)
    console.print(f"as {clean_untrusted(document['user'], 128)}", markup=False)
    return 0


async def _show(remote: Remote, plan_id: str) -> int:
    plan = await remote.call("get_plan", {"plan_id": plan_id})
    console.print(f"{plan['plan_id']} ({plan['status']}): {clean_untrusted(plan['summary'], 300)}", markup=False)
    console.print(await remote.read(plan["diff_uri"]), markup=False)
    return 0


async def _approve(remote: Remote, plan_id: str, comment: str) -> int:
    arguments: dict[str, Any] = {"plan_id": plan_id}
    if comment:
        arguments["comment"] = comment[:COMMENT_MAX]
    answer = await remote.call("approve_plan", arguments)
    if answer["outcome"] != "approved":
        console.print(f"Not approved ({answer['outcome']}): the plan stays {answer['status']}.", markup=False)
        return 1
    console.print(
        f"Approved {answer['plan_id']} as {answer['approved_by']} (valid until {answer.get('expires_at')}). "
        "The agent can now call execute_plan.",
        markup=False,
    )
    return 0


async def _reject(remote: Remote, plan_id: str, reason: str) -> int:
    answer = await remote.call("reject_plan", {"plan_id": plan_id, "reason": clean_untrusted(reason, COMMENT_MAX)})
    console.print(f"Rejected {answer['plan_id']}. It can never be approved or executed.", markup=False)
    return 0
