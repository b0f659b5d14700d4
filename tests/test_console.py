"""The web console against a real MTA database, through aiohttp's test client: logins,
sessions and CSRF, the queue pages, qshape's buckets, operator actions and their audit
events, and the pages that say what failed instead of a traceback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import ClientConnectionError, ClientResponse, ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from helpers import new_message

from waypost import events
from waypost.console import (
    ConsoleContext,
    PeerView,
    RecentEvents,
    auth,
    build_app,
    start_console,
)
from waypost.console.charts import Sampler, rates, sparkline
from waypost.console.render import SESSIONS
from waypost.smtp.auth import hash_password
from waypost.store.database import Database
from waypost.store.location import DatabaseLocation
from waypost.store.qshape import bucket_of, shape
from waypost.tracking.journal import Journal, Record

PASSWORD = "correct horse"
TOWN = "smtp:[192.0.2.1]:25"
Client = TestClient[web.Request, web.Application]


@pytest.fixture(autouse=True)
def _no_login_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "FAILED_LOGIN_DELAY", 0.0)


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, object]]]]:
    """The console's events, as (name, fields), in order."""
    got: list[tuple[str, dict[str, object]]] = []
    watched = [
        events.QUEUE_ADMIN,
        events.CONSOLE_LOGIN,
        events.CONSOLE_LOGIN_FAILED,
        events.RECIPIENT_REROUTED,
        events.UNEXPECTED_ERROR,
    ]
    stop = events.observe(watched, lambda e, f: got.append((e.name, dict(f))))
    yield got
    stop()


def enqueue(db_path: Path, recipients: tuple[str, ...], *, hop: str = TOWN, age: float = 0) -> int:
    db = Database.open(str(db_path))
    try:
        with db.transaction():
            return db.enqueue(new_message(recipients, hop=hop), time.time() - age, 86400.0)
    finally:
        db.close()


def states(db_path: Path, message_id: int) -> list[str]:
    db = Database.open(str(db_path), readonly=True)
    try:
        return [r.state for r in db.queue_rows(message_id=message_id)]
    finally:
        db.close()


@contextmanager
def recording(recent: RecentEvents) -> Iterator[None]:
    """Events from INFO up go to `recent`, as the service's logging would send them."""
    logger = logging.getLogger("waypost")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(recent)
    try:
        yield
    finally:
        logger.removeHandler(recent)
        logger.setLevel(level)


class Console:
    """A console app over a real database in tmp_path, with a test client."""

    def __init__(self, tmp_path: Path) -> None:
        self.db_path = tmp_path / "mta.db"
        Database.open(str(self.db_path)).close()
        self.users = tmp_path / "console-users"
        self.users.write_text(f"op:{hash_password(PASSWORD)}\n")
        self.woken = 0
        self.recent = RecentEvents()
        self.ctx = ConsoleContext(
            database=DatabaseLocation("sqlite", str(self.db_path)),
            tracking_path=None,
            users_path=str(self.users),
            session_timeout=3600.0,
            recent=self.recent,
            samples=lambda: {"queue_length": 3.0, "messages_in_total": 10.0},
            peers=lambda: [
                PeerView(name="B-MTA", address="192.0.2.9:102", inbound=1, outbound=2, failed=0)
            ],
            queue_changed=self.wake,
            hostname="mx.test",
        )

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return Console(tmp_path)


@pytest.fixture
async def client(console: Console) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(console.ctx))) as test_client:
        yield test_client


async def log_in(client: Client, password: str = PASSWORD) -> str:
    """Log in as `op`; the page's CSRF token."""
    response = await client.post(
        "/login", data={"username": "op", "password": password, "next": "/"}
    )
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def test_every_page_needs_a_login(client: Client) -> None:
    for path in ("/", "/queues", "/queues/local", "/messages/1", "/track", "/peers", "/events"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=")
    response = await client.post("/actions", data={"action": "hold", "ids": "1"})
    assert response.status == 403


async def test_a_login_sets_a_strict_http_only_cookie_and_logs_an_event(
    client: Client, heard: list[tuple[str, dict[str, object]]]
) -> None:
    response = await client.post(
        "/login",
        data={"username": "op", "password": PASSWORD, "next": "/queues"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/queues"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert ("console-login", {"client": "127.0.0.1", "username": "op"}) in heard
    page = await client.get("/queues")
    assert page.status == 200
    assert "op" in await page.text()


async def test_a_wrong_password_is_refused_with_an_event(
    client: Client, heard: list[tuple[str, dict[str, object]]]
) -> None:
    response = await client.post("/login", data={"username": "op", "password": "guess"})
    assert response.status == 401
    assert "Unknown user or wrong password" in await response.text()
    assert ("console-login-failed", {"client": "127.0.0.1", "username": "op"}) in heard
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_refused_logins_are_slowed_and_one_at_a_time(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "FAILED_LOGIN_DELAY", 0.3)
    app = build_app(console.ctx)
    async with TestClient(TestServer(app)) as client:
        started = time.monotonic()
        guesses = [
            client.post("/login", data={"username": "nobody", "password": str(n)}) for n in range(3)
        ]
        responses = await asyncio.gather(*guesses)
        assert [r.status for r in responses] == [401, 401, 401]
        assert time.monotonic() - started >= 0.9
        assert len(app[auth.LOGIN_TURNS]) == 0


async def test_a_missing_users_file_is_explained(client: Client, console: Console) -> None:
    console.users.unlink()
    page = await client.get("/login")
    text = await page.text()
    assert page.status == 200
    assert "Nobody can log in" in text and str(console.users) in text
    response = await client.post("/login", data={"username": "op", "password": PASSWORD})
    assert response.status == 503
    assert "cannot read" in await response.text()
    assert "Traceback" not in text


async def test_logout_ends_the_session(client: Client) -> None:
    csrf = await log_in(client)
    response = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_a_session_expires(console: Console) -> None:
    app = build_app(console.ctx)
    async with TestClient(TestServer(app)) as client:
        await log_in(client)
        sessions = app[SESSIONS]
        sessions.clock = lambda: time.monotonic() + 3601.0
        assert (await client.get("/", allow_redirects=False)).status == 303


async def test_pages_carry_security_headers(client: Client) -> None:
    await log_in(client)
    response = await client.get("/queues")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    css = await client.get("/static/console.css")
    assert css.status == 200
    assert "Cache-Control" not in css.headers


async def test_hold_and_release_change_the_database_and_are_audited(
    client: Client,
    console: Console,
    heard: list[tuple[str, dict[str, object]]],
) -> None:
    mid = enqueue(console.db_path, ("a@town.example", "b@town.example"))
    csrf = await log_in(client)
    confirm = await client.get(f"/actions/confirm?action=hold&ids={mid}&back=/messages/{mid}")
    page = await confirm.text()
    assert confirm.status == 200
    assert f'id="confirm-ids">{mid}<' in page
    assert states(console.db_path, mid) == ["queued", "queued"]  # asking changes nothing
    response = await client.post(
        "/actions",
        data={"csrf": csrf_of(page), "action": "hold", "ids": str(mid), "back": f"/messages/{mid}"},
    )
    assert response.status == 200
    assert str(response.url).endswith(f"/messages/{mid}")
    assert "hold: 2 recipients changed" in await response.text()
    assert states(console.db_path, mid) == ["held", "held"]
    assert console.woken == 0
    response = await client.post(
        "/actions", data={"csrf": csrf, "action": "release", "ids": str(mid), "back": "/queues"}
    )
    assert "release: 2 recipients changed" in await response.text()
    assert states(console.db_path, mid) == ["queued", "queued"]
    assert console.woken == 1
    audits = [fields for name, fields in heard if name == "queue-admin"]
    assert audits == [
        {"user": "op (console)", "uid": "-", "action": "hold", "ids": str(mid), "count": 2},
        {"user": "op (console)", "uid": "-", "action": "release", "ids": str(mid), "count": 2},
    ]


@pytest.mark.parametrize("token", [None, "", "forged"])
async def test_a_post_without_the_sessions_csrf_token_changes_nothing(
    client: Client,
    console: Console,
    heard: list[tuple[str, dict[str, object]]],
    token: str | None,
) -> None:
    mid = enqueue(console.db_path, ("a@town.example",))
    await log_in(client)
    data = {"action": "hold", "ids": str(mid)}
    if token is not None:
        data["csrf"] = token
    response = await client.post("/actions", data=data)
    assert response.status == 403
    assert "security token" in await response.text()
    assert states(console.db_path, mid) == ["queued"]
    assert not [name for name, _ in heard if name == "queue-admin"]


async def test_a_post_from_another_site_is_refused(client: Client, console: Console) -> None:
    mid = enqueue(console.db_path, ("a@town.example",))
    csrf = await log_in(client)
    response = await client.post(
        "/actions",
        data={"csrf": csrf, "action": "hold", "ids": str(mid)},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403
    assert states(console.db_path, mid) == ["queued"]
    ours = f"http://{client.host}:{client.port}"
    for origin, status in (("null", 403), (ours, 200)):
        response = await client.post(
            "/actions",
            data={"csrf": csrf, "action": "hold", "ids": str(mid)},
            headers={"Origin": origin},
        )
        assert response.status == status, origin
    assert states(console.db_path, mid) == ["held"]


async def test_another_sessions_token_is_refused(console: Console) -> None:
    mid = enqueue(console.db_path, ("a@town.example",))
    app = build_app(console.ctx)
    async with TestClient(TestServer(app)) as first, TestClient(TestServer(app)) as second:
        theirs = await log_in(first)
        await log_in(second)
        response = await second.post(
            "/actions", data={"csrf": theirs, "action": "hold", "ids": str(mid)}
        )
        assert response.status == 403
    assert states(console.db_path, mid) == ["queued"]


async def test_delete_bounce_and_reroute(
    client: Client,
    console: Console,
    heard: list[tuple[str, dict[str, object]]],
) -> None:
    doomed = enqueue(console.db_path, ("a@town.example",))
    moved = enqueue(console.db_path, ("b@town.example",))
    csrf = await log_in(client)
    response = await client.post(
        "/actions",
        data={"csrf": csrf, "action": "delete", "ids": str(doomed), "back": f"/messages/{doomed}"},
    )
    assert str(response.url).endswith("/queues")
    assert "delete: 1 recipients changed" in await response.text()
    assert states(console.db_path, doomed) == []
    bad = await client.get(f"/actions/confirm?action=reroute&ids={moved}&next_hop=carrier-pigeon")
    assert bad.status == 400
    assert "Bad next hop" in await bad.text()
    response = await client.post(
        "/actions",
        data={
            "csrf": csrf,
            "action": "reroute",
            "ids": str(moved),
            "next_hop": "smtp:[192.0.2.7]:2525",
        },
    )
    assert "reroute: 1 recipients changed" in await response.text()
    assert (
        "recipient-rerouted",
        {
            "message_id": moved,
            "recipient": "b@town.example",
            "old": TOWN,
            "new": "smtp:[192.0.2.7]:2525",
        },
    ) in heard
    response = await client.post(
        "/actions", data={"csrf": csrf, "action": "bounce", "ids": str(moved)}
    )
    assert "bounce: 1 recipients changed" in await response.text()
    assert states(console.db_path, moved) == ["failed"]


async def test_bad_action_requests_are_refused_with_a_page(
    client: Client,
) -> None:
    await log_in(client)
    for query, says in (
        ("action=explode&ids=1", "Unknown action"),
        ("action=hold&ids=1;DROP", "Bad message id"),
        ("action=hold", "No message chosen"),
    ):
        response = await client.get(f"/actions/confirm?{query}")
        assert response.status == 400, query
        assert says in await response.text()


async def test_qshape_counts_recipients_by_hop_and_age(client: Client, console: Console) -> None:
    enqueue(console.db_path, ("a@town.example", "b@town.example"))  # 0 minutes: bucket 5
    enqueue(console.db_path, ("c@town.example",), age=7 * 60)  # bucket 10
    enqueue(console.db_path, ("d@far.example",), hop="x400:B-MTA", age=2000 * 60)  # 1280+
    await log_in(client)
    page = await (await client.get("/queues")).text()
    rows = {
        hop: [int(n) for n in re.findall(r'<td class="num(?: total)?">(\d+)</td>', row)]
        for hop, row in re.findall(r'<tr data-hop="([^"]+)">(.*?)</tr>', page, re.S)
    }
    assert rows[TOWN] == [3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert rows["x400:B-MTA"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert 'id="queue-total">4<' in page


def test_qshape_buckets_like_postfix() -> None:
    assert [bucket_of(m * 60) for m in (0, 4.9, 5, 9.9, 10, 1279, 1280, 99999)] == [
        0,
        0,
        1,
        1,
        2,
        8,
        9,
        9,
    ]
    assert bucket_of(float("nan")) == 9
    result = shape([("local", 100.0), ("local", "garbage"), ("x400:B", 100.0)], now=100.0)
    assert [(r.next_hop, r.total, r.buckets[0], r.buckets[9]) for r in result.rows] == [
        ("local", 2, 1, 1),
        ("x400:B", 1, 1, 0),
    ]


async def test_a_hops_page_lists_its_messages_and_acts_on_the_ticked_ones(
    client: Client, console: Console
) -> None:
    first = enqueue(console.db_path, ("a@town.example",))
    second = enqueue(console.db_path, ("b@town.example",))
    enqueue(console.db_path, ("c@elsewhere.example",), hop="local")
    await log_in(client)
    page = await (await client.get("/queues/smtp%3A%5B192.0.2.1%5D%3A25")).text()
    assert "a@town.example" in page and "b@town.example" in page
    assert "c@elsewhere.example" not in page
    confirm = await client.get(f"/actions/confirm?action=hold&ids={first}&ids={second}")
    assert f'id="confirm-ids">{first}, {second}<' in await confirm.text()


async def test_a_message_page_shows_envelope_recipients_and_headers(
    client: Client, console: Console
) -> None:
    mid = enqueue(console.db_path, ("a@town.example",))
    await log_in(client)
    page = await (await client.get(f"/messages/{mid}")).text()
    assert "alice@example.org" in page  # originator
    assert "a@town.example" in page and 'data-state="queued"' in page
    assert "Subject: test" in page
    assert "Tracking" in page


async def test_an_unknown_message_is_a_404_page(client: Client) -> None:
    await log_in(client)
    response = await client.get("/messages/999999")
    assert response.status == 404
    assert "No message 999999 in the queue" in await response.text()
    response = await client.get("/no/such/page")
    assert response.status == 404
    assert "<h1" in await response.text()


async def test_a_store_failure_is_a_page_that_says_what_failed(
    client: Client, console: Console
) -> None:
    await log_in(client)
    console.db_path.unlink()
    response = await client.get("/queues")
    text = await response.text()
    assert response.status == 503
    assert "no MTA database at" in text
    assert "Traceback" not in text


async def test_a_bug_is_a_500_page_and_an_event(
    console: Console, heard: list[tuple[str, dict[str, object]]]
) -> None:
    def broken() -> list[PeerView]:
        raise RuntimeError("boom")

    ctx = dataclasses.replace(console.ctx, peers=broken)
    async with TestClient(TestServer(build_app(ctx))) as client:
        await log_in(client)
        response = await client.get("/peers")
        text = await response.text()
    assert response.status == 500
    assert "boom" not in text and "Traceback" not in text
    assert ("unexpected-error", {"component": "console", "error": "RuntimeError('boom')"}) in heard


async def test_peers_and_recent_events(client: Client, console: Console) -> None:
    with recording(console.recent):
        events.emit(events.CONSOLE_LOGIN_FAILED, client="192.0.2.66", username="<script>x")
        await log_in(client)
    page = await (await client.get("/peers")).text()
    assert "B-MTA" in page and "192.0.2.9:102" in page
    warnings = await (await client.get("/events?severity=warning")).text()
    assert "console login as &lt;script&gt;x refused" in warnings
    assert "logged in to the console" not in warnings
    infos = await (await client.get("/events?category=security&severity=info")).text()
    assert "operator op logged in" in infos
    none = await (await client.get("/events?category=smtp")).text()
    assert "logged in" not in none


def test_recent_events_keep_the_last_n_newest_first() -> None:
    recent = RecentEvents(capacity=3)
    with recording(recent):
        for n in range(5):
            events.emit(events.CONSOLE_LOGIN, client=f"192.0.2.{n}", username="op")
        logging.getLogger("waypost.other").warning("not an event")
    chosen = recent.select()
    assert [e.fields["client"] for e in chosen] == ["192.0.2.4", "192.0.2.3", "192.0.2.2"]
    assert recent.select(min_severity=events.Severity.WARNING) == []


def test_charts_draw_values_and_counter_rates() -> None:
    clock = iter([0.0, 5.0, 10.0])
    values: Iterator[Mapping[str, float]] = iter(
        [{"queue": 1, "in_total": 0}, {"queue": 3, "in_total": 10}, {"queue": 2, "in_total": 30}]
    )
    sampler = Sampler(lambda: next(values), clock=lambda: next(clock))
    for _ in range(3):
        sampler.sample()
    charts = {c.key: c for c in sampler.charts()}
    assert charts["queue"].current == "2"
    assert charts["in_total"].current == "4.00/s"
    assert charts["in_total"].label == "in per second"
    assert rates([(0, 5), (5, 2)]) == [0.4]  # a restarted counter counts from zero
    assert sparkline([1, 3, 2], width=10, height=10) == "0.0,9.0 5.0,1.0 10.0,5.0"
    assert sparkline([]) == ""


async def test_the_overview_shows_totals_and_charts(client: Client, console: Console) -> None:
    enqueue(console.db_path, ("a@town.example",))
    await log_in(client)
    page = await (await client.get("/")).text()
    assert 'data-state="queued">1<' in page
    assert "<polyline" in page and "queue length" in page


async def test_tracking_search_and_a_messages_records(console: Console, tmp_path: Path) -> None:
    mid = enqueue(console.db_path, ("a@town.example",))
    path = tmp_path / "tracking.db"
    journal = Journal(path)
    msgid = "<tracked.1@example.org>"
    journal.extend(
        [
            Record(
                at=1e9, kind="received", message_id=mid, msgid=msgid, sender="alice@example.org"
            ),
            Record(
                at=1e9 + 1,
                kind="deferred",
                message_id=mid,
                recipient="a@town.example",
                next_hop=TOWN,
                detail="4.4.1 connect failed",
            ),
            Record(at=1e9, kind="received", message_id=mid + 1, msgid="<other@example.org>"),
        ]
    )
    journal.flush()
    journal.close()
    ctx = dataclasses.replace(console.ctx, tracking_path=str(path))
    async with TestClient(TestServer(build_app(ctx))) as client:
        await log_in(client)
        found = await (await client.get("/track", params={"msgid": "tracked.1@example.org"})).text()
        assert "4.4.1 connect failed" in found and "&lt;tracked.1@example.org&gt;" in found
        assert "other@example.org" not in found
        nothing = await (await client.get("/track", params={"sender": "nobody@*"})).text()
        assert 'id="nothing-found"' in nothing
        bad = await (await client.get("/track", params={"queue_id": "12a"})).text()
        assert "A queue id is a number" in bad
        page = await (await client.get(f"/messages/{mid}")).text()
        assert 'class="record deferred"' in page
    off = await (await log_in_and_get(console.ctx, "/track?msgid=x")).text()
    assert "Tracking is off" in off
    path.unlink()
    missing = await log_in_and_get(ctx, f"/messages/{mid}")
    assert missing.status == 200
    assert "No tracking records: no tracking journal at" in await missing.text()


async def log_in_and_get(ctx: ConsoleContext, path: str) -> ClientResponse:
    async with TestClient(TestServer(build_app(ctx))) as client:
        await log_in(client)
        response = await client.get(path)
        await response.read()
        return response


async def test_a_damaged_message_is_shown_not_a_500(
    client: Client, console: Console, heard: list[tuple[str, dict[str, object]]]
) -> None:
    mid = enqueue(console.db_path, ("a@town.example",))
    db = Database.open(str(console.db_path))
    db.conn.execute(
        "UPDATE messages SET received_at = 'garbage', envelope = x'00' WHERE id = ?", (mid,)
    )
    db.close()
    await log_in(client)
    response = await client.get(f"/messages/{mid}")
    page = await response.text()
    assert response.status == 200
    assert "does not decode" in page
    assert (await client.get(f"/queues/{TOWN}")).status == 200
    assert (await client.get("/queues")).status == 200
    assert not [name for name, _ in heard if name == "unexpected-error"]


async def test_start_console_listens_says_so_and_closes(console: Console) -> None:
    heard: list[dict[str, object]] = []
    stop = events.observe([events.HTTP_LISTENING], lambda e, f: heard.append(dict(f)))
    try:
        server = await start_console(console.ctx, "127.0.0.1", 0)
    finally:
        stop()
    try:
        assert heard == [{"service": "console", "address": server.address}]
        url = f"http://{server.address}/login"
        async with ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert "Log in to the console" in await response.text()
    finally:
        await server.close()
    async with ClientSession() as session:
        with pytest.raises(ClientConnectionError):
            await session.get(f"http://{server.address}/login")
