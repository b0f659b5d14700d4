"""The console's web application: its routes and middlewares, the security headers of
every response, and the server the service starts and stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from waypost import events
from waypost.console import actions, auth, pages
from waypost.console.charts import SAMPLE_INTERVAL, Sampler
from waypost.console.context import ConsoleContext
from waypost.console.errors import error_pages
from waypost.console.render import CONTEXT, SAMPLER, SESSIONS, TEMPLATES, environment
from waypost.console.sessions import Sessions

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    # Our own stylesheet, no script at all, and no page of ours inside another's frame.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: a browser would then send `Origin: null` with our own forms, which
    # the session middleware refuses as another site's.
    "Referrer-Policy": "same-origin",
}
# Pages name senders, recipients and subjects: never kept by a browser or a proxy.
NO_STORE = "no-store"


def build_app(ctx: ConsoleContext) -> web.Application:
    app = web.Application(
        middlewares=[error_pages, auth.require_session], client_max_size=64 * 1024
    )
    app[CONTEXT] = ctx
    app[SESSIONS] = Sessions(ctx.session_timeout)
    app[SAMPLER] = Sampler(ctx.samples)
    app[TEMPLATES] = environment()
    app[auth.LOGIN_TURNS] = auth.LoginTurns()
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_sampling)
    app.router.add_get("/login", auth.login_form)
    app.router.add_post("/login", auth.login)
    app.router.add_post("/logout", auth.logout)
    app.router.add_get("/", pages.overview)
    app.router.add_get("/queues", pages.queues)
    app.router.add_get("/queues/{hop:.+}", pages.next_hop)
    app.router.add_get(r"/messages/{id:\d{1,18}}", pages.message)
    app.router.add_get("/track", pages.track)
    app.router.add_get("/peers", pages.peers)
    app.router.add_get("/events", pages.recent_events)
    app.router.add_get("/actions/confirm", actions.confirm)
    app.router.add_post("/actions", actions.run)
    app.router.add_static("/static", STATIC)
    return app


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = NO_STORE


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    """The charts' sampling runs while the application does."""
    sampler = app[SAMPLER]
    task = asyncio.create_task(sampler.run(SAMPLE_INTERVAL), name="console-sampler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class ConsoleServer:
    """The console listening; `close()` stops it and its sampling."""

    def __init__(self, runner: web.AppRunner, address: str) -> None:
        self._runner = runner
        self.address = address

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_console(ctx: ConsoleContext, host: str, port: int) -> ConsoleServer:
    runner = web.AppRunner(build_app(ctx), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    if port == 0:  # asked for any free port (tests): say which one
        port = int(runner.addresses[0][1])
    address = f"{host}:{port}"
    events.emit(events.HTTP_LISTENING, service="console", address=address)
    return ConsoleServer(runner, address)
