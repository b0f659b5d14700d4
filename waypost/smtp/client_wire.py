"""What the SMTP client reads and writes on the wire: bounded reply parsing, EHLO
capabilities, the MAIL and RCPT commands with their parameters, and the DATA
payload (line-ending normalisation and dot-stuffing).

Pure functions and one small buffered parser; `waypost.smtp.client_protocol` is
the state machine that uses them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from waypost.message import Envelope, Notify, Recipient
from waypost.smtp.xtext import encode_xtext

MAX_RECEIVED_LINE = 2048
"""Longest reply line accepted from a server, CRLF included.

Four times the 512 octets of RFC 5321 §4.5.3.1.5, which bounds what the
server's own `Reply` (waypost.smtp.server_replies) may send: servers that
overrun it are met in practice, and §4.5.3.1 asks receivers not to impose
such limits where they can avoid it. Bounded all the same, against a peer
that never ends a line.
"""

MAX_RECEIVED_LINES = 100
"""Most lines in one (multi-line) reply; an EHLO reply has one per extension."""

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?: +|$)")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_NEWLINES = re.compile(rb"\r\n|\r|\n")


class ReplyError(Exception):
    """The server sent bytes that are not an SMTP reply: the peer's fault."""


def _printable(text: str) -> str:
    # Reply text ends up in logs, the store and DSNs: no control characters.
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


def _strip_enhanced(text: str, enhanced: str) -> str:
    match = _ENHANCED.match(text)
    if match and text[: match.end()].strip() == enhanced:
        return text[match.end() :]
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedReply:
    """One complete reply read from a server; a multi-line reply is one ReceivedReply.

    Not the server's `Reply` (waypost.smtp.server_replies), which is what our
    server sends and is held to the RFC's limits; this one takes what a peer
    sent, within the wider bounds of `ReplyReader`.

    `lines` are the texts after `NNN-`/`NNN `, decoded as UTF-8 with replacement
    and with control characters shown as `?`; `enhanced` is the RFC 3463 code
    (`5.1.1`) when the first line starts with one of the reply's own class.
    `str(reply)` is the one-line form kept as a detail: `550 5.1.1 <x@y>: unknown`.
    """

    code: int
    lines: tuple[str, ...]
    enhanced: str | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code {self.code} out of range")
        if not self.lines:
            raise ValueError("a reply has at least one line")
        if self.enhanced is not None and self.enhanced[0] != str(self.code)[0]:
            raise ValueError("enhanced status code of another class than the reply")

    @property
    def status(self) -> str:
        """The enhanced status code, or the reply class's generic one (`4.0.0`)."""
        return self.enhanced or f"{self.code // 100}.0.0"

    def __str__(self) -> str:
        texts = [self.lines[0]]
        for line in self.lines[1:]:
            texts.append(_strip_enhanced(line, self.enhanced) if self.enhanced else line)
        text = " ".join(t.strip() for t in texts if t.strip())
        return f"{self.code} {text}" if text else str(self.code)


def make_reply(code: int, lines: tuple[str, ...]) -> ReceivedReply:
    """A ReceivedReply with its enhanced status code picked out of the first line."""
    match = _ENHANCED.match(lines[0])
    enhanced = None
    if match and match.group(1) == str(code)[0]:
        enhanced = ".".join(match.group(1, 2, 3))
    return ReceivedReply(code=code, lines=lines, enhanced=enhanced)


class ReplyReader:
    """Splits the server's byte stream into Replies, within fixed bounds.

    `feed()` bytes, then call `next_reply()` until it returns None. It raises
    ReplyError for anything that is not a well-formed reply: a line longer than
    `max_line`, more than `max_lines` lines, a code that is not three digits
    from 200 to 599, a continuation line with another code, a bare CR. After
    that the reader is spent. Lines may end in CRLF or (leniently) a bare LF.
    """

    def __init__(self, *, max_line: int = MAX_RECEIVED_LINE, max_lines: int = MAX_RECEIVED_LINES):
        self.max_line = max_line
        self.max_lines = max_lines
        self._buffer = bytearray()
        self._code: bytes | None = None
        self._lines: list[str] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def has_pending(self) -> bool:
        """Whether bytes were received that are not part of a returned reply."""
        return bool(self._buffer or self._lines)

    def clear(self) -> None:
        self._buffer.clear()
        self._code = None
        self._lines = []

    def next_reply(self) -> ReceivedReply | None:
        while True:
            end = self._buffer.find(b"\n", 0, self.max_line)
            if end < 0:
                if len(self._buffer) >= self.max_line:
                    raise ReplyError(f"reply line longer than {self.max_line} octets")
                return None
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            raw = raw.removesuffix(b"\r")
            reply = self._line(raw)
            if reply is not None:
                return reply

    def _line(self, raw: bytes) -> ReceivedReply | None:
        code, separator = raw[:3], raw[3:4]
        if (
            len(code) != 3
            or not code.isdigit()
            or code[:1] not in (b"2", b"3", b"4", b"5")
            or separator not in (b"", b" ", b"-")
        ):
            raise ReplyError(f"not an SMTP reply line: {raw[:60]!r}")
        if b"\r" in raw:
            raise ReplyError("bare CR inside a reply line")
        if self._code is not None and code != self._code:
            raise ReplyError(
                f"continuation line with code {code.decode()} in a {self._code.decode()} reply"
            )
        self._code = code
        self._lines.append(_printable(raw[4:].decode("utf-8", "replace")))
        if separator == b"-":
            if len(self._lines) >= self.max_lines:
                raise ReplyError(f"reply of more than {self.max_lines} lines")
            return None
        reply = make_reply(int(code), tuple(self._lines))
        self._code = None
        self._lines = []
        return reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What the server offered in its EHLO reply (nothing after HELO: `esmtp` False).

    `size` is None when SIZE was not offered, 0 when it was offered without a
    fixed limit (RFC 1870), else the largest message the server takes.
    `keywords` holds every extension keyword, upper-cased, known or not.
    """

    esmtp: bool = False
    keywords: frozenset[str] = frozenset()
    pipelining: bool = False
    size: int | None = None
    eightbitmime: bool = False
    smtputf8: bool = False
    dsn: bool = False
    starttls: bool = False
    chunking: bool = False
    binarymime: bool = False
    enhanced_status_codes: bool = False
    auth: frozenset[str] = frozenset()


def parse_ehlo(reply: ReceivedReply) -> Capabilities:
    """The capabilities in a 250 EHLO reply; lines that are not `keyword [params]` are skipped."""
    params: dict[str, list[str]] = {}
    for line in reply.lines[1:]:
        # The obsolete `AUTH=LOGIN PLAIN` form still comes from some servers.
        words = line.replace("=", " ", 1).split() if line[:5].upper() == "AUTH=" else line.split()
        if not words or not _KEYWORD.fullmatch(words[0]):
            continue
        params.setdefault(words[0].upper(), []).extend(words[1:])
    size: int | None = None
    if "SIZE" in params:
        value = params["SIZE"][0] if params["SIZE"] else ""
        size = int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else 0
    return Capabilities(
        esmtp=True,
        keywords=frozenset(params),
        pipelining="PIPELINING" in params,
        size=size,
        eightbitmime="8BITMIME" in params,
        smtputf8="SMTPUTF8" in params,
        dsn="DSN" in params,
        starttls="STARTTLS" in params,
        chunking="CHUNKING" in params,
        binarymime="BINARYMIME" in params,
        enhanced_status_codes="ENHANCEDSTATUSCODES" in params,
        auth=frozenset(m.upper() for m in params.get("AUTH", [])),
    )


def split_orcpt(orcpt: str) -> tuple[str, str]:
    """An ORCPT value as kept in the envelope (`rfc822;bob@example.org`, decoded, not
    xtext) split into its address type and address; no type means `rfc822`."""
    kind, separator, address = orcpt.partition(";")
    if not separator:
        return "rfc822", orcpt
    return kind.strip() or "rfc822", address


def normalize_newlines(content: bytes) -> bytes:
    """Every bare CR and bare LF as CRLF, so that only our own CRLF.CRLF ends the data."""
    # Fast path: content received over SMTP is CRLF-only already (the server refuses bare
    # CR and LF), and counting is far cheaper than a regex substitution.
    crlf = content.count(b"\r\n")
    if content.count(b"\r") == crlf and content.count(b"\n") == crlf:
        return content
    return _NEWLINES.sub(b"\r\n", content)


def dot_stuff(content: bytes) -> bytes:
    """The DATA payload for a message: newlines normalised, a final CRLF ensured,
    a `.` doubled at the start of each line, then the `.` CRLF terminator (RFC 5321 §4.5.2)."""
    return stuffed(normalize_newlines(content))


def stuffed(body: bytes) -> bytes:
    """`dot_stuff` of a body whose newlines are normalised already: scanned once more for
    them would cost as much again as the stuffing itself on a large message."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..") + b".\r\n"


NEEDS_SMTPUTF8 = "5.6.7 SMTPUTF8 is required, but was not offered by the server"


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The commands of one transaction, fitted to what the server offered.

    `refused` holds the recipients that cannot go to this server at all, each
    with a `5.x.x …` explanation; `rcpts` the RCPT command of every other one.
    `data` is `DATA` (then `content` after 354) or, when `chunked`, the whole
    `BDAT n LAST` command with the message. `dsn_unsupported`: DSN parameters
    were asked for and the server does not offer DSN.
    """

    mail: bytes
    rcpts: tuple[tuple[int, bytes], ...]
    refused: tuple[tuple[int, str], ...]
    data: bytes
    content: bytes
    chunked: bool
    dsn_unsupported: bool


def plan_transaction(
    caps: Capabilities,
    envelope: Envelope,
    content: bytes,
    recipients: Sequence[Recipient],
    *,
    chunking: bool = False,
) -> Plan:
    """MAIL, RCPT and DATA/BDAT for `recipients` (indexes are positions in it)."""
    binary = (envelope.body or "").upper() == "BINARYMIME"
    chunked = caps.chunking and (chunking or binary)
    # Content marked CRLF-clean where it was made needs no scan (a sixth of a 100 KiB
    # message's cost to send): the SMTP server checked it, or the gateway wrote it so.
    wire = content if binary or envelope.crlf else normalize_newlines(content)
    headers_utf8 = envelope.smtputf8 and not _header_section(content).isascii()
    problem = None
    if _bad_address(envelope.originator):
        problem = "5.1.7 the reverse path contains characters not allowed in SMTP"
    elif caps.size and len(wire) > caps.size:
        problem = (
            f"5.3.4 message size {len(wire)} exceeds the size limit {caps.size}"
            " that the server announced"
        )
    elif binary and not (caps.binarymime and caps.chunking):
        problem = "5.6.3 binary content, and the server offers no BINARYMIME with CHUNKING"
    elif (headers_utf8 or not envelope.originator.isascii()) and not caps.smtputf8:
        problem = NEEDS_SMTPUTF8

    mail = [f"MAIL FROM:<{envelope.originator}>"]
    if caps.size is not None:
        mail.append(f"SIZE={len(wire)}")
    if binary:
        mail.append("BODY=BINARYMIME")
    elif caps.eightbitmime and ((envelope.body or "").upper() == "8BITMIME" or not wire.isascii()):
        mail.append("BODY=8BITMIME")
    utf8 = not envelope.originator.isascii() or any(not r.address.isascii() for r in recipients)
    if caps.smtputf8 and (envelope.smtputf8 or utf8 or headers_utf8):
        mail.append("SMTPUTF8")
    if caps.dsn and envelope.ret:
        mail.append(f"RET={envelope.ret.value}")
    envid = encode_xtext(envelope.envid) if envelope.envid else ""
    if caps.dsn and envid and len(envid) <= 100:  # RFC 3461 §4.4: at most 100 characters
        mail.append(f"ENVID={envid}")

    rcpts: list[tuple[int, bytes]] = []
    refused: list[tuple[int, str]] = []
    asked = bool(envelope.ret or envelope.envid)
    for index, recipient in enumerate(recipients):
        asked = asked or bool(recipient.notify or recipient.orcpt)
        if problem:
            refused.append((index, problem))
        elif _bad_address(recipient.address) or not recipient.address:
            refused.append(
                (index, "5.1.3 the recipient address contains characters not allowed in SMTP")
            )
        elif not recipient.address.isascii() and not caps.smtputf8:
            refused.append((index, NEEDS_SMTPUTF8))
        else:
            params = _dsn_parameters(recipient) if caps.dsn else []
            command = " ".join([f"RCPT TO:<{recipient.address}>", *params]) + "\r\n"
            rcpts.append((index, command.encode()))
    return Plan(
        mail=(" ".join(mail) + "\r\n").encode(),
        rcpts=tuple(rcpts),
        refused=tuple(refused),
        data=f"BDAT {len(wire)} LAST\r\n".encode() + wire if chunked else b"DATA\r\n",
        content=b"" if chunked else stuffed(wire),
        chunked=chunked,
        dsn_unsupported=asked and not caps.dsn,
    )


def _dsn_parameters(recipient: Recipient) -> list[str]:
    params = []
    if recipient.notify:
        if Notify.NEVER in recipient.notify:
            params.append("NOTIFY=NEVER")
        else:
            words = [n.value for n in Notify if n in recipient.notify]
            params.append("NOTIFY=" + ",".join(words))
    if recipient.orcpt:
        kind, address = split_orcpt(recipient.orcpt)
        orcpt = f"ORCPT={kind};{encode_xtext(address)}"
        # RFC 3461 §4.2: an address type is an atom, and the value at most 500 characters.
        if len(orcpt) <= 506 and kind.isascii() and kind.replace("-", "").isalnum():
            params.append(orcpt)
    return params


def _bad_address(address: str) -> bool:
    if address.isprintable():  # no C0 control and no DEL: only the brackets to look for
        return "<" in address or ">" in address
    return any(ord(c) < 32 or ord(c) == 127 or c in "<>" for c in address)


def _header_section(content: bytes) -> bytes:
    end = content.find(b"\r\n\r\n")
    if end < 0:
        end = content.find(b"\n\n")
    return content if end < 0 else content[:end]
