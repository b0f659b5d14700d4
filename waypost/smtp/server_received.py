"""The Received: trace header field a receiving SMTP server adds, and counting them for loops.

Pure functions: the time is an argument, so they need no clock.
"""

from __future__ import annotations

import re
import time

# RFC 3848 and RFC 6531 §3.7.3 "with" protocol types.
PROTOCOLS = frozenset(
    {"SMTP", "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA"}
    | {"UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA"}
)

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_END_OF_HEADER = re.compile(rb"\r?\n\r?\n")


def protocol_name(*, esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """The `with` keyword for a message: SMTP, ESMTP[S][A], or UTF8SMTP[S][A]."""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(
    *,
    from_name: str,
    from_addr: str,
    by_name: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    when: float,
    tls: str | None = None,
) -> bytes:
    """One `Received:` field (RFC 5321 §4.4), folded, ending in CRLF.

    `from_name` is the HELO/EHLO argument and `from_addr` the client's IP
    address (IPv6 written `IPv6:…` in the brackets); `recipient` is given only
    for a single-recipient message, so others' addresses are not disclosed.
    Peer-supplied text is cleaned so it cannot end the field or break a comment.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    addr = _clean(from_addr)
    if ":" in addr and not addr.upper().startswith("IPV6:"):
        addr = f"IPv6:{addr}"
    lines = [f"Received: from {_clean(from_name) or 'unknown'} ([{addr}])"]
    via = f"\tby {_clean(by_name)} (Waypost) with {protocol}"
    if tls:
        via += f" ({_clean(tls, allow_space=True)})"
    lines.append(f"{via} id {_clean(queue_id)}")
    stamp = _date(when)
    if recipient is not None:
        lines.append(f"\tfor <{_clean(recipient, allow_utf8=True)}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def count_received(content: bytes) -> int:
    """How many `Received:` fields the header section of a message has (for loop detection).

    The header section ends at the first empty line; the body is never scanned,
    so a large message costs no more than its header.
    """
    if content.startswith((b"\r\n", b"\n")):
        return 0
    end = _END_OF_HEADER.search(content)
    header = content if end is None else content[: end.start() + 1]
    return len(_RECEIVED.findall(header))


def _clean(text: str, *, allow_utf8: bool = False, allow_space: bool = False) -> str:
    # Parentheses would open or close a comment; CR/LF would end the field.
    out = []
    for c in text:
        if c == " " and allow_space:
            out.append(c)
        elif c in "()\\" or not c.isprintable() or c.isspace():
            out.append("_")
        elif not allow_utf8 and not c.isascii():
            out.append("?")
        else:
            out.append(c)
    return "".join(out)


def _date(when: float) -> str:
    t = time.gmtime(when)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )
