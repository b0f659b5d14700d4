"""Wire bytes for the SMTP server tests (h2's FrameFactory idea), and a scripted driver.

`Session` plays the driver and the application around a `ServerConnection`:
it feeds bytes, answers decidable events with a `decide` function, starts
"TLS" when asked, and returns the replies that came out, parsed strictly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

from waypost.smtp.server_protocol import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Decidable,
    Event,
    MessageData,
    Reply,
    ServerConnection,
    ServerSettings,
    StartTLS,
)

CRLF = b"\r\n"
HOSTNAME = "mx.example.net"
SETTINGS = ServerSettings(hostname=HOSTNAME, tls_available=True)

T = TypeVar("T")


# -- commands ----------------------------------------------------------------------------


def line(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return raw + CRLF


def ehlo(name: str = "client.example.org") -> bytes:
    return line(f"EHLO {name}")


def helo(name: str = "client.example.org") -> bytes:
    return line(f"HELO {name}")


def mail(path: str = "<alice@example.org>", *params: str) -> bytes:
    return line(" ".join([f"MAIL FROM:{path}", *params]))


def rcpt(path: str = "<bob@example.net>", *params: str) -> bytes:
    return line(" ".join([f"RCPT TO:{path}", *params]))


def data() -> bytes:
    return line("DATA")


def rset() -> bytes:
    return line("RSET")


def noop() -> bytes:
    return line("NOOP")


def quit_() -> bytes:
    return line("QUIT")


def starttls() -> bytes:
    return line("STARTTLS")


def bdat(chunk: bytes, *, last: bool = False) -> bytes:
    """The BDAT command and its chunk, as a client sends them."""
    return line(f"BDAT {len(chunk)}{' LAST' if last else ''}") + chunk


def stuff(body: bytes) -> bytes:
    """Dot-stuff a CRLF text and end it with CRLF.CRLF (RFC 5321 §4.5.2)."""
    if body and not body.endswith(CRLF):
        body += CRLF
    stuffed = re.sub(rb"(?m)(^|(?<=\r\n))\.", b"..", body)
    return stuffed + b".\r\n"


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{password}")


def message(subject: str = "test", body: str = "hello") -> bytes:
    return f"From: alice@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def envelope(*recipients: str) -> bytes:
    """EHLO, MAIL and RCPTs: the usual start of a transaction."""
    rcpts = recipients or ("<bob@example.net>",)
    return ehlo() + mail() + b"".join(rcpt(r) for r in rcpts)


# -- replies -----------------------------------------------------------------------------

_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -])([^\r\n]*)\r\n")
_STATUS = re.compile(r"([245])\.[0-9]{1,3}\.[0-9]{1,3}( |$)")
_NO_STATUS = {220, 334, 354}


@dataclass(frozen=True)
class Answer:
    """One parsed reply."""

    code: int
    lines: tuple[str, ...]

    @property
    def status(self) -> str | None:
        match = _STATUS.match(self.lines[0])
        return match.group(0).strip() if match else None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def parse_replies(raw: bytes, *, ehlo_lines: bool = True) -> list[Answer]:
    """Strictly parse server output: every line `NNN[ -]text CRLF`, at most 512 octets,
    a multi-line reply with one code, and an enhanced status code of the reply's class
    on every line of every reply that should carry one."""
    answers: list[Answer] = []
    pos = 0
    current: list[str] = []
    code = None
    while pos < len(raw):
        match = _REPLY_LINE.match(raw, pos)
        assert match, f"malformed reply line at {pos}: {raw[pos : pos + 80]!r}"
        assert match.end() - pos <= 512, "reply line longer than 512 octets"
        this = int(match.group(1))
        assert code is None or this == code, "code changed inside a multi-line reply"
        code = this
        current.append(match.group(3).decode("utf-8"))
        pos = match.end()
        if match.group(2) == b" ":
            answers.append(Answer(code, tuple(current)))
            current, code = [], None
    assert not current, "unterminated multi-line reply"
    for answer in answers:
        is_hello = answer.code == 250 and not _STATUS.match(answer.lines[0])
        if answer.code in _NO_STATUS or (is_hello and ehlo_lines):
            continue
        for text in answer.lines:
            status = _STATUS.match(text)
            assert status, f"reply without an enhanced status code: {answer}"
            assert status.group(1) == str(answer.code)[0], f"status of another class: {answer}"
    return answers


def codes(answers: list[Answer]) -> list[int]:
    return [a.code for a in answers]


def short(answers: list[Answer]) -> list[str]:
    """`["250 2.1.0", "550 5.1.1", "354"]`: code and enhanced status of each reply."""
    return [f"{a.code} {a.status}" if a.status else str(a.code) for a in answers]


# -- the scripted driver and application --------------------------------------------------

Decision: TypeAlias = Reply | str | None
"""What `decide` returns: None accepts, a str accepts with that text, a Reply rejects."""


def accept_all(event: Decidable) -> Decision:
    return None


@dataclass
class Session:
    """A ServerConnection with a scripted driver (`auto_tls`) and application (`decide`).

    With `manual=True` decidable events are left pending, for tests of PAUSED.
    """

    settings: ServerSettings = SETTINGS
    tls_active: bool = False
    decide: Callable[[Decidable], Decision] = accept_all
    manual: bool = False
    auto_tls: bool = True
    refuse: Reply | None = None
    events: list[Event] = field(default_factory=list)
    flushes: list[bytes] = field(default_factory=list)
    transcript: list[tuple[str, bytes]] = field(default_factory=list)
    """("C", bytes fed) and ("S", bytes written) in order, greeting first."""

    def __post_init__(self) -> None:
        self.conn = ServerConnection(self.settings, tls_active=self.tls_active)
        self.greeting = self.conn.greeting(self.refuse)
        self.transcript.append(("S", self.greeting))

    def feed(self, *chunks: bytes) -> list[Answer]:
        """Feed each chunk in turn (running the machine after each); the replies produced."""
        return parse_replies(self.feed_raw(*chunks))

    def feed_raw(self, *chunks: bytes) -> bytes:
        out = b""
        for chunk in chunks:
            self.transcript.append(("C", chunk))
            self.conn.receive_data(chunk)
            out += self.pump()
        return out

    def eof(self) -> list[Answer]:
        return self.feed(b"")

    def pump(self) -> bytes:
        """Run the machine until it needs data, is paused (manual) or closed.

        The replies are taken with one data_to_send() call at the end (a second one
        only to write the 220 before "starting TLS"), as a driver flushes them.
        """
        out = b""
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                if self.manual or self.conn.pending is None:
                    break
                continue
            if isinstance(event, ConnectionClosed) and event in self.events:
                break  # next_event repeats ConnectionClosed
            self.events.append(event)
            if isinstance(event, StartTLS) and self.auto_tls:
                out += self._flush()
                self.conn.tls_started()
            elif self.conn.pending is event and not self.manual:
                self.decide_pending(self.decide)
            if isinstance(event, ConnectionClosed):
                break
        return out + self._flush()

    def _flush(self) -> bytes:
        out = self.conn.data_to_send()
        if out:
            self.flushes.append(out)
            self.transcript.append(("S", out))
        return out

    def decide_pending(self, decide: Callable[[Decidable], Decision]) -> None:
        pending = self.conn.pending
        assert pending is not None
        decision = decide(pending)
        if isinstance(decision, Reply):
            self.conn.reject(pending, decision)
        else:
            self.conn.accept(pending, decision)

    def dialogue(self) -> str:
        """The transcript as `C: …`/`S: …` lines, for reading a failing test."""
        lines: list[str] = []
        for who, raw in self.transcript:
            text = raw.decode("utf-8", "backslashreplace")
            lines.extend(f"{who}: {x!r}" for x in text.split("\r\n") if x)
        return "\n".join(lines)

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def messages(self) -> list[bytes]:
        return [m.content for m in self.of(MessageData)]


def run(*chunks: bytes, **options: object) -> tuple[Session, list[Answer]]:
    """A fresh Session fed `chunks`: the session and every reply after the greeting."""
    session = Session(**options)  # type: ignore[arg-type]
    return session, session.feed(*chunks)
