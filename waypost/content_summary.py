"""Content as an operator reads it, as data: the kind of an object, an Internet message's
main headers, an IPM's heading, what an X.400 report says (the CLI and the console show it)."""

from __future__ import annotations

from typing import Any

from waypost.message import ContentType, Envelope, EnvelopeError, ObjectKind, decode_envelope
from waypost.x400.ipm import summarize_ipm
from waypost.x400.p1_report import decode_report_content

IPM_CONTENT_TYPES = frozenset({ContentType.P2, ContentType.P22, ContentType.P772})
_WANTED = (b"from:", b"to:", b"cc:", b"subject:", b"date:", b"message-id:")


def shown(text: str) -> str:
    """A field a peer wrote, safe on a terminal: control characters (an escape sequence,
    a carriage return hiding what precedes it) are written as `\\xNN`; the rest as is."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def kind_of(envelope: Envelope | None) -> str:
    """`report`, `probe`, `ipm` or `internet`: how the content is read."""
    if envelope is None:
        return "internet"
    if envelope.object_kind is ObjectKind.REPORT:
        return "report"
    if envelope.object_kind is ObjectKind.PROBE:
        return "probe"
    return "ipm" if envelope.content_type in IPM_CONTENT_TYPES else "internet"


def headers(content: bytes) -> list[str]:
    """The From/To/Cc/Subject/Date/Message-ID lines of an Internet message's header."""
    head = content.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = [ln for ln in head.splitlines() if ln.lower().startswith(_WANTED)]
    return [shown(ln.decode("utf-8", "replace")) for ln in lines]


def document(kind: str, content: bytes | None) -> dict[str, Any]:
    """The content's summary for a JSON document: `headers`, `ipm` or `report`."""
    if content is None or kind == "probe":
        return {}
    try:
        if kind == "report":
            report = decode_report_content(content)
            return {
                "report": {
                    "subject_id": report.subject_id,
                    "recipients": [
                        {
                            "address": fate.actual_recipient,
                            "outcome": fate.describe(),
                            "supplementary": fate.supplementary,
                        }
                        for fate in report.recipients
                    ],
                }
            }
        if kind == "ipm":
            ipm = summarize_ipm(content)
            return {
                "ipm": {
                    "kind": ipm.kind,
                    "this_ipm": ipm.this_ipm,
                    "originator": ipm.originator,
                    "subject": ipm.subject,
                    "to": ipm.primary,
                    "cc": ipm.copy,
                    "bcc": ipm.blind,
                    "body_parts": ipm.body_parts,
                    "heading_extensions": dict(ipm.military),
                }
            }
    except ValueError as exc:
        return {"content_error": str(exc)}
    return {"headers": headers(content)}


def decoded_envelope(blob: object) -> tuple[Envelope | None, str | None]:
    """A stored envelope decoded, or why it does not decode (a damaged row is shown, not
    fatal to the page or the listing)."""
    try:
        if not isinstance(blob, bytes):
            raise EnvelopeError(f"envelope is {type(blob).__name__}, not a blob")
        return decode_envelope(blob), None
    except EnvelopeError as exc:
        return None, str(exc)
