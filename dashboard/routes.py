"""The dashboard's routes (Starlette): the page, the JSON API, the event stream, /metrics.

Routes: ``/`` the page (its scripts under ``/static/``); ``/api/summary``;
``/api/customer/{domain}/{customer}``; ``/stream`` (SSE: ``alert`` events as they arrive, a
``summary`` every second); ``/metrics`` (the performance series, Prometheus text format). Given
an access token, every route answers 401 without it (``stream/access.py``: bearer, or a
browser's basic-auth password, which the browser then resends with the page's own requests and
its event stream).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from crmrisk.dashboard.app import Dashboard
from crmrisk.stream.access import CHALLENGE, authorized

__all__ = ["build_app"]

STATIC = Path(__file__).parent / "static"


class _TokenGate:
    """ASGI middleware: 401 (with a basic-auth challenge) for a request without the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not authorized(header, self.token):
                refused = PlainTextResponse(
                    "unauthorized\n", 401, headers={"WWW-Authenticate": CHALLENGE}
                )
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(
    dashboard: Dashboard, domains: Sequence[str] = (), token: str | None = None
) -> Starlette:
    """The dashboard's routes; with a ``token``, only requests that carry it get an answer."""

    async def index(request: Request):
        return FileResponse(STATIC / "index.html")

    async def summary(request: Request):
        return JSONResponse(await asyncio.to_thread(dashboard.summary))

    async def customer(request: Request):
        domain, cid = request.path_params["domain"], request.path_params["customer"]
        found = await asyncio.to_thread(dashboard.customer, domain, cid)
        if found is None:
            return JSONResponse({"error": f"no {domain} customer {cid!r}"}, status_code=404)
        return JSONResponse(found)

    async def stream(request: Request):
        return EventSourceResponse(dashboard.events(request))

    async def metrics(request: Request):
        await asyncio.to_thread(dashboard.performance_reports)  # gauges as fresh as the page
        return Response(dashboard.performance_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await dashboard.start()
        try:
            yield
        finally:
            await dashboard.stop()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/summary", summary),
            Route("/api/customer/{domain}/{customer}", customer),
            Route("/stream", stream),
            Route("/metrics", metrics),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(_TokenGate, token=token)] if token is not None else [],
        lifespan=lifespan,
    )
