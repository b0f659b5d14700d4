"""Content as an operator reads it: an Internet message's main headers, an IPM's heading
and text body parts, an X.400 report's outcome — as text lines or as a JSON document.
Shared by `waypost queue show` and `waypost mailbox show`."""

from __future__ import annotations

import sys
from typing import Any

from waypost.message import ContentType, Envelope, ObjectKind
from waypost.x400.ipm import summarize_ipm
from waypost.x400.ipm_body import body_parts
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


def print_summary(kind: str, content: bytes | None, indent: str = "  ") -> None:
    """The lines `show` prints about the content (not the content itself)."""
    if kind == "probe":
        print(f"{indent}Content:        none (a probe asks whether it could be delivered)")
    elif content is None:
        print(f"{indent}Content:        MISSING")
    elif kind == "report":
        print_report(content, indent)
    elif kind == "ipm":
        print_ipm_heading(content, indent)
    else:
        lines = headers(content)
        if lines:
            print(f"{indent}Headers:")
            for line in lines:
                print(f"{indent}  {line}")


def print_ipm_heading(content: bytes, indent: str = "  ") -> None:
    """The heading of a P2/P22/P772 interpersonal message."""
    try:
        ipm = summarize_ipm(content)
    except ValueError as exc:  # BERError is a ValueError
        print(f"{indent}Content:        not a readable IPM: {exc}")
        return
    if ipm.kind != "ipm":
        print(f"{indent}Content:        an interpersonal notification ({ipm.kind})")
        return
    print(f"{indent}IPM heading:")
    for label, value in (
        ("This IPM", ipm.this_ipm),
        ("Originator", ipm.originator),
        ("Subject", ipm.subject),
    ):
        if value is not None:
            print(f"{indent}  {label + ':':<16}{shown(value)}")
    for label, names in (("To", ipm.primary), ("Cc", ipm.copy), ("Bcc", ipm.blind)):
        for name in names:
            print(f"{indent}  {label + ':':<16}{shown(name)}")
    for label, value in ipm.military:
        print(f"{indent}  {label + ':':<16}{value}")
    print(f"{indent}  {'Body parts:':<16}{', '.join(ipm.body_parts) or '(none)'}")


def print_report(content: bytes, indent: str = "  ") -> None:
    """What an X.400 report says: about which message, and each recipient's fate."""
    try:
        report = decode_report_content(content)
    except ValueError as exc:  # BERError is a ValueError
        print(f"{indent}Content:        not a readable report: {exc}")
        return
    print(f"{indent}Report:")
    print(f"{indent}  {'Subject:':<16}{shown(report.subject_id)}")
    for fate in report.recipients:
        print(f"{indent}  {shown(fate.actual_recipient)}: {shown(fate.describe())}")
        if fate.supplementary:
            print(f"{indent}    ({shown(fate.supplementary)})")


def print_body(kind: str, content: bytes) -> None:
    """The content itself (`show --body`): an Internet message as stored, with Unix line
    ends (as a Maildir holds it); an IPM as its heading and the text of its body parts;
    a report as what it says."""
    if kind == "internet":
        sys.stdout.flush()
        sys.stdout.buffer.write(content.replace(b"\r\n", b"\n"))
        return
    if kind == "report":
        print_report(content, indent="")
        return
    if kind == "probe":
        return
    print_ipm_heading(content, indent="")
    try:
        parts = body_parts(content)
    except ValueError as exc:
        print(f"Body: not readable: {exc}")
        return
    for number, part in enumerate(parts, 1):
        print()
        if part.text is None:
            print(f"[body part {number}: {part.kind}, {part.size} octets, not text]")
        else:
            print(f"[body part {number}: {part.kind}]")
            print(part.text.replace("\r\n", "\n"))


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
