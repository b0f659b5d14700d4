"""Who may use the console: the login form checked against the operators' users file
(salted scrypt, as SMTP AUTH's), sessions in a cookie, and a CSRF token on every POST."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web

from waypost import events
from waypost.console.render import (
    CONTEXT,
    SESSION,
    SESSIONS,
    Handler,
    render,
    session_of,
    url_part,
)
from waypost.smtp.auth import AuthUsers, UsersFileError

COOKIE = "waypost_console"
# A refused login answers this late: guessing passwords over the console is slow.
FAILED_LOGIN_DELAY = 1.0
# Reachable without a session.
PUBLIC_PATHS = ("/login",)
PUBLIC_PREFIXES = ("/static/",)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pages need a session (else the login form), and a POST the session's CSRF token,
    and no other site's Origin."""
    if request.method == "POST" and not same_origin(request):
        raise web.HTTPForbidden(text="This form was sent from another site.")
    sessions = request.app[SESSIONS]
    session = sessions.find(request.cookies.get(COOKIE))
    if session is not None:
        request[SESSION] = session
    if is_public(request.path):
        return await handler(request)
    if session is None:
        if request.method in ("GET", "HEAD"):
            raise web.HTTPSeeOther(f"/login?next={url_part(request.path_qs)}")
        raise web.HTTPForbidden(text="Your session has ended: log in again.")
    if request.method == "POST":
        form = await request.post()
        sent = form.get("csrf")
        if not session.csrf_matches(sent if isinstance(sent, str) else None):
            raise web.HTTPForbidden(
                text="This form's security token is missing or out of date: "
                "open the page again and resend it."
            )
    return await handler(request)


def same_origin(request: web.Request) -> bool:
    """A browser names the page a POST comes from; it must be one of ours (a request
    without Origin is not a browser's cross-site one)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


def local_target(target: str | None, default: str = "/") -> str:
    """Where to go after a login or an action: a path of this site only, never another
    site (`//evil.example`, `https://…`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


async def login_form(request: web.Request) -> web.StreamResponse:
    if session_of(request) is not None:
        raise web.HTTPSeeOther(local_target(request.query.get("next")))
    problem = await _users_problem(request.app[CONTEXT].users_path)
    return render(
        request,
        "login.html",
        problem=problem,
        error=None,
        username="",
        next=local_target(request.query.get("next")),
    )


async def login(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    form = await request.post()
    username = str(form.get("username", ""))[:200]
    password = str(form.get("password", ""))[:1000]
    target = local_target(str(form.get("next", "/")))
    client = request.remote or "-"
    try:
        # One attempt at a time from each client, each refusal answered late: many
        # guesses sent at once wait in line rather than being checked together.
        async with request.app[LOGIN_TURNS].turn(client):
            ok = await asyncio.to_thread(_verify, ctx.users_path, username, password)
            if not ok:
                events.emit(events.CONSOLE_LOGIN_FAILED, client=client, username=username)
                await asyncio.sleep(FAILED_LOGIN_DELAY)
    except UsersFileError as exc:
        return render(
            request,
            "login.html",
            status=503,
            problem=str(exc),
            error=None,
            username=username,
            next=target,
        )
    if not ok:
        return render(
            request,
            "login.html",
            status=401,
            problem=None,
            error="Unknown user or wrong password.",
            username=username,
            next=target,
        )
    old = request.cookies.get(COOKIE)
    if old:
        request.app[SESSIONS].end(old)
    session = request.app[SESSIONS].start(username)
    events.emit(events.CONSOLE_LOGIN, client=client, username=username)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        session.token,
        httponly=True,
        samesite="Strict",
        path="/",
        max_age=int(request.app[SESSIONS].timeout),
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is not None:
        request.app[SESSIONS].end(session.token)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


class LoginTurns:
    """A turn per client address for login attempts; a client's entry goes with its last
    waiting attempt, so the table holds only clients trying now."""

    def __init__(self) -> None:
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, client: str) -> AsyncIterator[None]:
        lock, waiting = self._turns.get(client, (asyncio.Lock(), 0))
        self._turns[client] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._turns[client]
            if waiting == 1:
                del self._turns[client]
            else:
                self._turns[client] = (lock, waiting - 1)

    def __len__(self) -> int:
        return len(self._turns)


LOGIN_TURNS = web.AppKey("console_login_turns", LoginTurns)


def _verify(users_path: str, username: str, password: str) -> bool:
    # Read at each login: an operator added or removed needs no restart.
    return AuthUsers.load(users_path).verify(username, password)


async def _users_problem(users_path: str) -> str | None:
    """Why nobody can log in (the users file is missing or bad), or None."""
    try:
        await asyncio.to_thread(AuthUsers.load, users_path)
    except UsersFileError as exc:
        return str(exc)
    return None
