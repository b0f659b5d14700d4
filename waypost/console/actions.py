"""Operator actions on queued messages (hold, release, retry, delete, bounce, reroute):
confirmed on a page of their own, run in a worker thread, logged as event 1403."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from waypost import events
from waypost.console import store_access
from waypost.console.auth import local_target
from waypost.console.errors import PageError
from waypost.console.render import CONTEXT, render, session_of
from waypost.message import Envelope
from waypost.nexthop import NextHop, parse_next_hop
from waypost.store import admin
from waypost.store.location import DatabaseLocation

REROUTE = "reroute"
NAMES = (*(a.value for a in admin.Action), REROUTE)
# Messages one action applies to at most (a hop's page lists up to 1000 recipients).
MAX_IDS = 1000
# What each action makes due at once: the queue manager is told, not left to its poll.
MAKES_DUE = frozenset({admin.Action.RELEASE.value, admin.Action.RETRY.value, REROUTE})
EXPLAINED = {
    "hold": "No delivery of their recipients until they are released.",
    "release": "Held recipients are queued again and tried at once.",
    "retry": "Queued and deferred recipients are tried at once.",
    "delete": "The messages are removed from the queue without any report. This cannot be undone.",
    "bounce": "Every recipient not yet delivered fails, and the originator gets a "
    "non-delivery report.",
    REROUTE: "Recipients not yet delivered go to the next hop given; held ones stay held.",
}


@dataclass(frozen=True, slots=True)
class AskedAction:
    """An action as asked: its name, the message ids, and for reroute the next hop."""

    action: str
    ids: list[int]
    next_hop: NextHop | None
    back: str


def _parse(action: str, ids: list[str], next_hop: str, back: str) -> AskedAction:
    if action not in NAMES:
        raise PageError(400, "Unknown action", f"{action!r} is not one of {', '.join(NAMES)}.")
    numbers: list[int] = []
    for text in ids:
        for word in text.replace(",", " ").split():
            if not word.isdigit():
                raise PageError(400, "Bad message id", f"{word!r} is not a message id.")
            numbers.append(int(word))
    numbers = list(dict.fromkeys(numbers))
    if not numbers:
        raise PageError(400, "No message chosen", "Tick the messages to act on, then try again.")
    if len(numbers) > MAX_IDS:
        raise PageError(400, "Too many messages", f"At most {MAX_IDS} at a time.")
    hop: NextHop | None = None
    if action == REROUTE:
        try:
            hop = parse_next_hop(next_hop)
        except ValueError as exc:
            raise PageError(400, "Bad next hop", f"{next_hop!r}: {exc}.") from None
    return AskedAction(action, numbers, hop, local_target(back, "/queues"))


async def confirm(request: web.Request) -> web.StreamResponse:
    """The confirmation step: the exact action and ids, and a form that does it."""
    query = request.query
    asked = _parse(
        query.get("action", ""),
        query.getall("ids", []),
        query.get("next_hop", ""),
        query.get("back", "/queues"),
    )
    return render(
        request,
        "confirm.html",
        action=asked.action,
        ids=asked.ids,
        next_hop=str(asked.next_hop) if asked.next_hop else "",
        back=asked.back,
        explained=EXPLAINED[asked.action],
    )


async def run(request: web.Request) -> web.StreamResponse:
    """Do a confirmed action (the CSRF token was checked by the session middleware)."""
    ctx = request.app[CONTEXT]
    session = session_of(request)
    assert session is not None  # only reached through require_session
    form = await request.post()
    asked = _parse(
        str(form.get("action", "")),
        [str(form.get("ids", ""))],
        str(form.get("next_hop", "")),
        str(form.get("back", "/queues")),
    )
    now = time.time()
    if asked.next_hop is not None:
        changed = await _reroute(ctx.database, asked.ids, asked.next_hop, now)
    else:
        action = admin.Action(asked.action)
        changed = await store_access.writing(
            ctx.database, lambda db: admin.apply(db, action, asked.ids, now)
        )
    events.emit(
        events.QUEUE_ADMIN,
        user=f"{session.user} (console)",
        uid="-",
        action=asked.action,
        ids=",".join(map(str, asked.ids)),
        count=changed,
    )
    if changed and asked.action in MAKES_DUE:
        ctx.queue_changed()
    session.flash = f"{asked.action}: {changed} recipients changed"
    # A deleted message has no page to go back to.
    back = "/queues" if asked.action == admin.Action.DELETE else asked.back
    raise web.HTTPSeeOther(back)


async def _reroute(database: DatabaseLocation, ids: list[int], hop: NextHop, now: float) -> int:
    def choose(_envelope: Envelope, _index: int, _old: str) -> str:
        return str(hop)

    result = await store_access.writing(database, lambda db: admin.reroute(db, ids, choose, now))
    admin.log_rerouted(result)
    return result.routed
