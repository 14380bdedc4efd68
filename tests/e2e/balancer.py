"""A small HTTP load balancer on 127.0.0.1, for the tests that put replicas behind one address.

Two policies, the two a real load balancer offers:

- ``"round-robin"``: every HTTP request goes to the next replica, whatever it carries.
- ``"session"``: a request carrying an ``Mcp-Session-Id`` goes to the replica that issued that id
  (affinity on the header); any other request goes round robin.

It forwards requests and streams answers (SSE included) unchanged, except ``Host``, which names the
replica (the replicas' DNS-rebinding protection wants a loopback host).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from typing import Any

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.e2e.http_server import free_port

SESSION_HEADER = "mcp-session-id"
_HOP_BY_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade"}


class Balancer:
    """``with Balancer([url, ...], policy) as lb``: serves at ``lb.url``; ``lb.served`` counts requests per replica."""

    def __init__(self, backends: list[str], policy: str = "round-robin") -> None:
        if policy not in {"round-robin", "session"}:
            raise ValueError(policy)
        self.backends = backends
        self.policy = policy
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.served: Counter[str] = Counter()
        self._next = itertools.cycle(backends)
        self._sessions: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _pick(self, session_id: str | None) -> str:
        with self._lock:
            if self.policy == "session" and session_id in self._sessions:
                return self._sessions[session_id]
            return next(self._next)

    async def _forward(self, request: Request) -> Response:
        backend = self._pick(request.headers.get(SESSION_HEADER))
        self.served[backend] += 1
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        target = backend + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        client: httpx2.AsyncClient = request.app.state.client
        answer = await client.send(
            client.build_request(request.method, target, headers=headers, content=await request.body()), stream=True
        )
        issued = answer.headers.get(SESSION_HEADER)
        if issued is not None:
            with self._lock:
                self._sessions.setdefault(issued, backend)
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP},
            background=BackgroundTask(answer.aclose),
        )

    def _app(self) -> Starlette:
        methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=methods)])
        app.state.client = httpx2.AsyncClient(timeout=None)
        return app

    def __enter__(self) -> Balancer:
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)  # type: ignore[union-attr]
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise AssertionError("the test load balancer did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)
