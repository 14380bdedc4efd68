"""What every tool module reaches the wired application through (the lifespan fills it in)."""

from __future__ import annotations

from infra_mcp.container import App
from infra_mcp.errors import AccessDenied, InfraError
from infra_mcp.server.auth import verified_user
from infra_mcp.server.pending import PendingWatch
from infra_mcp.settings import Settings


class Runtime:
    """Holds the App opened by the lifespan (static resources get no Context to reach it through)."""

    def __init__(self, settings: Settings, *, verified_identities: bool = False) -> None:
        self.settings = settings
        self.verified_identities = verified_identities
        self._app: App | None = None
        self.pending = PendingWatch(self._user_or_none)

    def _user_or_none(self) -> str | None:
        return verified_user() if self.verified_identities else self.settings.user

    async def pending_changed(self, project_id: str) -> None:
        """Tell the project's members' sessions that the plans waiting for a person changed."""
        try:
            project = await self.app.store.get_project(project_id)
        except InfraError:
            return  # deleted meanwhile: nobody left to tell
        await self.pending.changed(project)

    async def pending_changed_elsewhere(self, project_id: str) -> None:
        """Another replica announced a change: tell this replica's sessions (and announce nothing)."""
        try:
            project = await self.app.store.get_project(project_id)
        except InfraError:
            return
        await self.pending.changed(project, relay=False)

    @property
    def app(self) -> App:
        if self._app is None:
            raise RuntimeError("infra-mcp server used outside its lifespan")
        return self._app

    @property
    def user(self) -> str:
        """The acting user of the current call.

        On stdio and on loopback HTTP without auth: ``INFRA_MCP_USER`` (the OS user). On a team server:
        the verified token's user claim, and nothing else (the auth middleware let the request in).

        Raises:
            AccessDenied: AUTH_001 on a team server when the call carries no verified token (never expected:
                the endpoint refuses such requests before any tool runs).
        """
        if not self.verified_identities:
            return self.settings.user
        user = verified_user()
        if user is None:
            raise AccessDenied(
                "This call carries no verified identity. Call again with a bearer token of the team's identity "
                "provider (see the server's /.well-known/oauth-protected-resource).",
                details={"reason": "no_verified_identity"},
            )
        return user
