"""Tracking records made from the events of a message's life: the journal hears the same
call that logs the event (`events.observe`), so the log and the journal cannot disagree."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from waypost import events
from waypost.events import EventDefinition
from waypost.tracking.journal import Journal, fields_json

# `250 2.0.0 Ok: queued as 4F2A` (Postfix, Waypost), `… id=1a2b3c-000Abc-XY` (Exim),
# `… Message accepted for delivery` carries none.
_QUEUED_AS = re.compile(r"queued as ([^\s;,]+)|\bid=([^\s;,]+)", re.IGNORECASE)


def remote_id(detail: str) -> str | None:
    """The next hop's own id for the message, as its reply to the content names it."""
    found = _QUEUED_AS.search(detail)
    if found is None:
        return None
    return found.group(1) or found.group(2)


def _int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


def _str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


# A record as the journal writes it: the columns of journal.COLUMNS, in order.
Row = tuple[object, ...]
Make = Callable[[Mapping[str, object], float], list[Row]]


def _queued(f: Mapping[str, object], at: float) -> list[Row]:
    message_id = _int(f.get("message_id"))
    extra = {
        k: f[k]
        for k in ("source", "peer", "tls", "auth", "size", "recipients")
        if f.get(k) not in (None, "")
    }
    detail = f"from {f.get('source')} {f.get('peer') or ''}".rstrip()
    rows: list[Row] = [
        (
            at,
            "received",
            message_id,
            _str(f.get("mts_id")),
            _str(f.get("msgid")),
            _str(f.get("sender")),
            None,
            None,
            None,
            None,
            detail,
            fields_json(extra),
        )
    ]
    routes = f.get("routes") or ()
    for address, hop in routes:  # type: ignore[attr-defined]
        rows.append(
            (at, "routed", message_id, None, None, None, address, hop, None, None, "", "{}")
        )
    return rows


def _outcome(kind: str) -> Make:
    def make(f: Mapping[str, object], at: float) -> list[Row]:
        detail = str(f.get("detail") or f.get("error") or "")
        hop = _str(f.get("next_hop"))
        remote = None
        if kind == "delivered":
            remote = remote_id(detail)
            if remote is None and hop is not None and hop.startswith("x400:"):
                remote = _str(f.get("mts_id"))  # X.400 relays keep the MTS identifier
        extra = {k: f[k] for k in ("attempts", "next_attempt", "remote_mta") if f.get(k)}
        recipient = _str(f.get("recipient"))
        message_id = _int(f.get("message_id"))
        return [
            (
                at,
                kind,
                message_id,
                None,
                None,
                None,
                recipient,
                hop,
                remote,
                None,
                detail,
                fields_json(extra),
            )
        ]

    return make


def _report(f: Mapping[str, object], at: float) -> list[Row]:
    detail = f"{f.get('kind')} report for {f.get('recipients')} recipient(s)"
    message_id, report_id = _int(f.get("message_id")), _int(f.get("report_id"))
    to = _str(f.get("to"))
    return [(at, "report", message_id, None, None, None, to, None, None, report_id, detail, "{}")]


def _converted(f: Mapping[str, object], at: float) -> list[Row]:
    """A conversion from the queue: a record of the message converted, linked to the new
    one."""
    new_id = _int(f.get("new_message_id"))
    detail = (
        f"{f.get('conversion')}: {f.get('recipients')} recipient(s) now message "
        f"{f.get('new_message_id')} ({f.get('new_mts_id') or ''})"
    )
    extra = {"new_mts_id": f["new_mts_id"]} if f.get("new_mts_id") else {}
    message_id = _int(f.get("message_id"))
    return [
        (
            at,
            "converted",
            message_id,
            None,
            None,
            None,
            None,
            None,
            None,
            new_id,
            detail,
            fields_json(extra),
        )
    ]


def _converted_on_arrival(f: Mapping[str, object], at: float) -> list[Row]:
    """A conversion on arrival: only the converted message was stored, so the record is
    in its life, under the MTS identifier the message arrived with."""
    detail = f"{f.get('conversion')} on arrival; it came as {f.get('mts_id')}"
    message_id, mts_id = _int(f.get("new_message_id")), _str(f.get("mts_id"))
    return [(at, "converted", message_id, mts_id, None, None, None, None, None, None, detail, "{}")]


def _operator(f: Mapping[str, object], at: float) -> list[Row]:
    ids = str(f.get("ids") or "")
    detail = f"{f.get('action')} by {f.get('user')}"
    if ids == "all":
        detail += " on the whole queue"
        return [(at, "operator", None, None, None, None, None, None, None, None, detail, "{}")]
    return [
        (at, "operator", int(i), None, None, None, None, None, None, None, detail, "{}")
        for i in ids.split(",")
        if i.isdigit()
    ]


def _quarantined(f: Mapping[str, object], at: float) -> list[Row]:
    if f.get("kind") != "message":
        return []
    reason = str(f.get("reason") or "")
    message_id = _int(f.get("object_id"))
    return [(at, "quarantined", message_id, None, None, None, None, None, None, None, reason, "{}")]


MAKERS: dict[EventDefinition, Make] = {
    events.MESSAGE_QUEUED: _queued,
    events.DELIVERED: _outcome("delivered"),
    events.RECIPIENT_DEFERRED: _outcome("deferred"),
    events.RECIPIENT_FAILED: _outcome("failed"),
    events.RECIPIENT_EXPIRED: _outcome("expired"),
    events.REPORT_QUEUED: _report,
    events.GATEWAY_CONVERTED: _converted,
    events.GATEWAY_CONVERTED_ON_ARRIVAL: _converted_on_arrival,
    events.QUEUE_ADMIN: _operator,
    events.OBJECT_QUARANTINED: _quarantined,
}
_BY_ID = {event.id: make for event, make in MAKERS.items()}


def record_into(journal: Journal) -> Callable[[], None]:
    """Write the records of every tracked event into `journal`; returns how to stop."""

    def observer(event: EventDefinition, fields: Mapping[str, object]) -> None:
        journal.add_rows(_BY_ID[event.id](fields, time.time()))

    return events.observe(MAKERS, observer)
