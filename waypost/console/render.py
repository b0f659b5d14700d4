"""The console's pages from Jinja2 templates (HTML escaped by default), and what every
page is given: the operator, the CSRF token for its forms, the last action's outcome."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from waypost.console.charts import Sampler
from waypost.console.context import ConsoleContext
from waypost.console.sessions import Session, Sessions

CONTEXT = web.AppKey("console_context", ConsoleContext)
SESSIONS = web.AppKey("console_sessions", Sessions)
SAMPLER = web.AppKey("console_sampler", Sampler)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
# What a middleware wraps.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The request's session, set by the authentication middleware.
SESSION = web.RequestKey("console_session", Session)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("waypost.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the tests, not the page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["age"] = age
    env.filters["since"] = since
    env.filters["urlpart"] = url_part
    return env


def session_of(request: web.Request) -> Session | None:
    return request.get(SESSION)


def render(
    request: web.Request, template: str, *, status: int = 200, **values: Any
) -> web.Response:
    ctx = request.app[CONTEXT]
    session = session_of(request)
    page = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            hostname=ctx.hostname,
            user=session.user if session else None,
            csrf=session.csrf if session else "",
            flash=session.take_flash() if session else None,
            path=request.path,
            **values,
        )
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def when(at: object) -> str:
    """A Unix time as UTC, to the second."""
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))
    except (OverflowError, OSError, ValueError):
        return f"bad time {at!r}"


def age(seconds: object) -> str:
    """An interval as an operator reads it: 45s, 12m, 3h, 2d."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "-"
    if not math.isfinite(seconds):
        return "-"
    value = max(0.0, float(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{int(value // size)}{unit}"
    return f"{int(value)}s"


def since(at: object) -> str:
    """How long ago a Unix time was; `-` for a damaged one (a row read back is not trusted)."""
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return "-"
    return age(time.time() - at)


def url_part(text: object) -> str:
    """Text as one segment of a URL path or one query value: every reserved character
    escaped (a next hop holds `:` and `[`)."""
    return quote(str(text), safe="")
