"""The P1 envelope's fields as the header fields RFC 2156 §5.3 defines for them (X400-*,
Priority, Original-Encoded-Information-Types) and back, and report requests ⇄ NOTIFY."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime

from waypost.message import ContentType, Envelope, Notify, Priority, ReportRequest, TraceElement
from waypost.mixer.header_fields import HeaderFields
from waypost.mixer.header_text import mail_date

# RFC 2156 §5.3.4: the names a Priority: field takes for X.411 Priority.
PRIORITY_WORDS = {
    Priority.NORMAL: "normal",
    Priority.NON_URGENT: "non-urgent",
    Priority.URGENT: "urgent",
}
_PRIORITY_OF = {word: priority for priority, word in PRIORITY_WORDS.items()}
# RFC 2156 §5.3.4 X400-Content-Type: the built-in content types by their names.
_CONTENT_TYPE_NAMES = {ContentType.P2: "P2 (2)", ContentType.P22: "P2-1988 (22)"}
_TRACE_ACTIONS = ("relayed", "rerouted", "expanded", "redirected")
_ARRIVAL_SPLIT = re.compile(r"\s*;\s*")


def envelope_fields(envelope: Envelope, or_to_mail: Callable[[str], str]) -> list[tuple[str, str]]:
    """The header fields an X.400 message's envelope becomes (RFC 2156 §5.3.4): what has no
    place in the SMTP envelope is kept in X400-* fields, so nothing is lost to a reader and
    the gateway can rebuild the trace if the message comes back (loop detection)."""
    fields: list[tuple[str, str]] = [
        ("X400-MTS-Identifier", f"[{envelope.mts_id}]"),
        ("X400-Originator", _mapped(envelope.originator, or_to_mail)),
    ]
    recipients = [_mapped(r.address, or_to_mail) for r in envelope.recipients]
    if recipients:
        fields.append(("X400-Recipients", ", ".join(recipients)))
    fields.append(("X400-Content-Type", content_type_name(envelope.content_type)))
    if envelope.content_id:
        fields.append(("X400-Content-Identifier", envelope.content_id))
    if envelope.priority is not Priority.NORMAL:
        fields.append(("Priority", PRIORITY_WORDS[envelope.priority]))
    if envelope.encoded_information_types:
        eits = ", ".join(envelope.encoded_information_types)
        fields.append(("Original-Encoded-Information-Types", eits))
    if envelope.deferred_delivery is not None:
        fields.append(("Deferred-Delivery", _date(envelope.deferred_delivery)))
    # RFC 2156 §5.3.7: one X400-Received per trace element, newest first as Received:.
    fields.extend(("X400-Received", trace_field(t)) for t in reversed(envelope.trace))
    return fields


def content_type_name(content_type: str) -> str:
    """X400-Content-Type's value: a built-in type's name and number, or the OID."""
    named = _CONTENT_TYPE_NAMES.get(content_type)
    if named is not None:
        return named
    kind, _, value = content_type.partition(":")
    return f"({value})" if kind == "builtin" else value


def trace_field(element: TraceElement) -> str:
    """An X400-Received value: `by DOMAIN; [attempted DOMAIN;] [converted (EITS);] ACTION;
    ARRIVAL` (RFC 2156 §5.3.7's elements, in its order)."""
    parts = [f"by {element.domain}"]
    if element.attempted_domain:
        parts.append(f"attempted {element.attempted_domain}")
    if element.converted_eits:
        parts.append(f"converted ({', '.join(element.converted_eits)})")
    parts.append(element.action)
    parts.append(_date(element.arrival))
    return "; ".join(parts)


def parse_trace_field(value: str) -> TraceElement | None:
    """The trace element of an X400-Received value; None when it does not read as one (a
    field some other gateway wrote differently is kept in the header, not trusted)."""
    parts = [p for p in _ARRIVAL_SPLIT.split(" ".join(value.split())) if p]
    if len(parts) < 2 or not parts[0].lower().startswith("by "):
        return None
    domain = parts[0][3:].strip()
    try:
        arrival = parsedate_to_datetime(parts[-1]).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    action, attempted, converted = "relayed", None, []
    for part in parts[1:-1]:
        word, _, rest = part.partition(" ")
        if word.lower() == "attempted":
            attempted = rest.strip() or None
        elif word.lower() == "converted":
            converted = [e.strip() for e in rest.strip("() ").split(",") if e.strip()]
        elif part.lower() in _TRACE_ACTIONS:
            action = part.lower()
    if not domain.startswith("/"):
        return None
    return TraceElement(
        domain=domain,
        arrival=arrival,
        action=action,
        converted_eits=converted,
        attempted_domain=attempted,
    )


def trace_of(fields: HeaderFields) -> list[TraceElement]:
    """The X.400 trace a message's X400-Received fields carry, oldest first (as P1 keeps it)."""
    found = [parse_trace_field(text) for text in fields.texts("X400-Received")]
    return [t for t in reversed(found) if t is not None]


def priority_of(fields: HeaderFields) -> Priority:
    """RFC 2156 §5.3.4 Priority: → X.411 priority (normal when absent or unknown)."""
    value = (fields.text("Priority") or "").strip().lower()
    return _PRIORITY_OF.get(value, Priority.NORMAL)


def notify_of(request: ReportRequest) -> list[Notify]:
    """RFC 3461 NOTIFY for an X.411 originator report request (RFC 2156 §5.2's mapping of
    report requests onto DSN parameters)."""
    if request is ReportRequest.NONE:
        return [Notify.NEVER]
    if request is ReportRequest.ALWAYS:
        return [Notify.SUCCESS, Notify.FAILURE]
    return [Notify.FAILURE]


def report_request_of(notify: Sequence[Notify]) -> ReportRequest:
    """The X.411 originator report request for RFC 3461 NOTIFY (without NOTIFY: failures)."""
    if Notify.NEVER in notify:
        return ReportRequest.NONE
    if Notify.SUCCESS in notify:
        return ReportRequest.ALWAYS
    return ReportRequest.NON_DELIVERY


def _mapped(address: str, or_to_mail: Callable[[str], str]) -> str:
    if not address:
        return "<>"
    try:
        return or_to_mail(address) if address.startswith("/") else address
    except ValueError:
        return address  # unmappable: the O/R address itself is the clearest record


def _date(timestamp: float) -> str:
    return mail_date(timestamp)
