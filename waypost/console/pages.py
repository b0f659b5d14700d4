"""The console's pages that only read: the overview, the queues (qshape), one next hop's
messages, one message, the tracking search, the X.400 peers and the recent events."""

from __future__ import annotations

import time

from aiohttp import web

from waypost.console import queue_view, store_access
from waypost.console.render import CONTEXT, SAMPLER, render
from waypost.events import Category, Severity
from waypost.store import qshape
from waypost.store.admin import Action
from waypost.store.base import StoreError
from waypost.tracking.query import Life, TrackQuery

# The fields of the tracking search: the form's names, and what each one asks.
TRACK_FIELDS = (
    ("queue_id", "Queue id"),
    ("msgid", "Message-ID"),
    ("mts_id", "MTS identifier"),
    ("sender", "Sender"),
    ("recipient", "Recipient"),
)
# The actions offered on a message, in the order of their buttons (reroute, with its next
# hop field, is beside them).
ACTIONS = (Action.HOLD, Action.RELEASE, Action.RETRY, Action.BOUNCE, Action.DELETE)


async def overview(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    totals = await store_access.reading(ctx.database, queue_view.totals)
    return render(
        request,
        "overview.html",
        totals=totals,
        charts=request.app[SAMPLER].charts(),
        sampling=ctx.samples is not None,
    )


async def queues(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    now = time.time()
    shape = await store_access.reading(ctx.database, lambda db: qshape.read_shape(db, now))
    return render(request, "queues.html", shape=shape, headings=qshape.HEADINGS)


async def next_hop(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    hop = request.match_info["hop"]
    listing = await store_access.reading(ctx.database, lambda db: queue_view.hop_messages(db, hop))
    return render(request, "hop.html", hop=hop, listing=listing, actions=ACTIONS)


async def message(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    message_id = int(request.match_info["id"])
    detail = await store_access.reading(
        ctx.database, lambda db: queue_view.message_detail(db, message_id)
    )
    if detail is None:
        return render(
            request,
            "not_found.html",
            status=404,
            what=f"No message {message_id} in the queue",
            hint="It may have been delivered or reported since: its tracking records say.",
            track_id=message_id if ctx.tracking_path else None,
        )
    lives: list[Life] = []
    tracking_problem: str | None = None
    if ctx.tracking_path is not None:
        # The journal is a record, not the queue: without it the message is still shown.
        try:
            lives = await store_access.track(ctx.tracking_path, TrackQuery(message_id=message_id))
        except StoreError as exc:
            tracking_problem = str(exc)
    return render(
        request,
        "message.html",
        m=detail,
        lives=lives,
        tracking_problem=tracking_problem,
        actions=ACTIONS,
    )


async def track(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    asked = {name: request.query.get(name, "").strip() for name, _ in TRACK_FIELDS}
    problem: str | None = None
    lives: list[Life] | None = None
    if ctx.tracking_path is None:
        problem = "Tracking is off ([tracking] enabled = false): there is no journal to search."
    elif any(asked.values()):
        queue_id = asked["queue_id"]
        if queue_id and not queue_id.isdigit():
            problem = f"A queue id is a number, not {queue_id!r}."
        else:
            query = TrackQuery(
                message_id=int(queue_id) if queue_id else None,
                msgid=asked["msgid"] or None,
                mts_id=asked["mts_id"] or None,
                sender=asked["sender"] or None,
                recipient=asked["recipient"] or None,
            )
            lives = await store_access.track(ctx.tracking_path, query)
    return render(
        request, "track.html", fields=TRACK_FIELDS, asked=asked, problem=problem, lives=lives
    )


async def peers(request: web.Request) -> web.StreamResponse:
    return render(request, "peers.html", peers=list(request.app[CONTEXT].peers()))


async def recent_events(request: web.Request) -> web.StreamResponse:
    categories = [c.value for c in Category]
    severities = [s.name.lower() for s in Severity]
    category = request.query.get("category") or None
    if category not in (None, *categories):
        category = None
    severity_name = request.query.get("severity", "info").lower()
    severity = Severity[severity_name.upper()] if severity_name in severities else Severity.INFO
    chosen = request.app[CONTEXT].recent.select(category=category, min_severity=severity)
    return render(
        request,
        "events.html",
        events=chosen,
        categories=categories,
        severities=severities,
        category=category,
        severity=severity.name.lower(),
    )
