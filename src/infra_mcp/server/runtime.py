"""What every tool module reaches the wired application through (the lifespan fills it in)."""

from __future__ import annotations

from infra_mcp.container import App
from infra_mcp.settings import Settings


class Runtime:
    """Holds the App opened by the lifespan (static resources get no Context to reach it through)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            raise RuntimeError("infra-mcp server used outside its lifespan")
        return self._app

    @property
    def user(self) -> str:
        return self.settings.user
