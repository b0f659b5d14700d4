"""Content as an operator reads it on a terminal: an Internet message's main headers, an
IPM's heading and text body parts, an X.400 report's outcome, as text lines (the data is
read by waypost.content_summary). Shared by `waypost queue show` and `waypost mailbox show`."""

from __future__ import annotations

import sys

from waypost.amhs.ats import ATSHeader, ATSHeaderError, split_header
from waypost.content_summary import headers, shown
from waypost.x400.ipm import summarize_ipm
from waypost.x400.ipm_body import body_parts
from waypost.x400.p1_report import decode_report_content


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
    header = ats_header(ipm.text)
    if header is not None:
        print(f"{indent}ATS message header:")
        travels = header.priority.envelope_priority.label
        print(f"{indent}  {'Priority:':<16}{header.priority} (travels {travels})")
        print(f"{indent}  {'Filing time:':<16}{header.filing_time}")
        if header.ohi:
            print(f"{indent}  {'Heading info:':<16}{shown(header.ohi)}")


def ats_header(text: str | None) -> ATSHeader | None:
    """The ATS message header an IPM's first text begins with (ICAO Doc 9880 Part II), if
    it has a valid one."""
    if text is None:
        return None
    try:
        return split_header(text)[0]
    except ATSHeaderError:
        return None


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
