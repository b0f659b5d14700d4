"""AFTN messages in the format of ICAO Annex 10 Volume II §4.4, as they travel on a TCP
connection, sans-I/O: `encode`, `decode`, and a `Deframer` that cuts a byte stream into
messages.

A message is a heading (the transmission identification: a three-letter circuit
identification and a channel-sequence number, §4.4.2.1.1, and up to ten characters of
additional service information), an address (the priority indicator and up to 21 addressee
indicators, seven to a line, §4.4.3), an origin (the filing time DDHHMM and the originator
indicator, then optional heading information, §4.4.4), the text (§4.4.5) and an ending
(§4.4.6). Two framings (docs/amhs.md):

* `ia5`, §4.4.15: SOH, heading, CR LF, address, CR LF, origin, CR LF, STX, text, CR LF,
  VT, ETX. An SS message's origin line is preceded by the priority alarm, five BEL.
* `ita2`, the teleprinter form written in ASCII: ZCZC, space, heading, CR LF, address,
  CR LF, origin, CR LF, text, CR LF, seven LF (the page-feed), NNNN, CR LF.

Reading accepts any of CR LF, CR CR LF and LF as the alignment function.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from waypost.amhs.addressing import is_aftn_address
from waypost.amhs.priority import PriorityIndicator, parse_indicator

MAX_ADDRESSEES = 21  # three lines of seven (§4.4.3.1.2)
PER_LINE = 7
MAX_LINE = 69  # characters of a line, the origin line's bound (§4.4.15.2.2.6)
MAX_SERVICE_INFO = 10  # §4.4.2.1.1: additional service information
# A message longer than this is not AFTN (Annex 10: 2 100 characters from ZCZC to NNNN):
# the deframer gives up on it rather than buffer a peer's garbage without end.
MAX_MESSAGE = 64 * 1024

SOH, STX, ETX, VT, BEL = b"\x01", b"\x02", b"\x03", b"\x0b", b"\x07"
START_ITA2, END_ITA2 = b"ZCZC", b"NNNN"
PAGE_FEED = "\n" * 7
# ITA-2 has letters, figures, these signs, space and the alignment characters (§4.1.2).
ITA2_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-?:().,'=/+ \r\n")

_TRANSMISSION_ID = re.compile(r"(?P<circuit>[A-Z]{3})(?P<number>[0-9]{3,4})(?: (?P<info>.{1,10}))?")
_ORIGIN = re.compile(r"(?P<time>[0-9]{6}) (?P<originator>[A-Z]{8})(?: (?P<ohi>.*))?")
_LINE_END = re.compile(r"\r*\n")


class Framing(enum.StrEnum):
    IA5 = "ia5"
    ITA2 = "ita2"


class AFTNFormatError(ValueError):
    """A message that breaks the AFTN format; the message says where."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AFTNMessage:
    """One AFTN message. `text` has its lines joined by LF; `transmission_id` is the
    circuit identification and channel-sequence number it was (or is to be) sent with."""

    priority: PriorityIndicator
    addressees: tuple[str, ...]
    filing_time: str
    originator: str
    text: str
    ohi: str = ""
    transmission_id: str = ""
    service_info: str = ""

    def __post_init__(self) -> None:
        if not 1 <= len(self.addressees) <= MAX_ADDRESSEES:
            raise AFTNFormatError(
                f"{len(self.addressees)} addressees; an AFTN message has 1 to {MAX_ADDRESSEES}"
            )
        for address in (*self.addressees, self.originator):
            if not is_aftn_address(address):
                raise AFTNFormatError(f"{address!r} is not an AFTN address (eight letters)")
        if not re.fullmatch(r"[0-9]{6}", self.filing_time):
            raise AFTNFormatError(f"filing time {self.filing_time!r} is not six digits DDHHMM")
        if self.transmission_id and not _TRANSMISSION_ID.fullmatch(self.transmission_id):
            raise AFTNFormatError(
                f"transmission identification {self.transmission_id!r} is not three letters "
                "and a channel-sequence number"
            )
        if len(self.service_info) > MAX_SERVICE_INFO:
            raise AFTNFormatError("additional service information is over ten characters")
        origin = f"{self.filing_time} {self.originator}" + (f" {self.ohi}" if self.ohi else "")
        if len(origin) > MAX_LINE:
            raise AFTNFormatError(f"the origin line is {len(origin)} characters; at most 69")


def check_text(text: str, framing: Framing, *, max_length: int) -> str | None:
    """Why `text` cannot travel as an AFTN message's text, or None: too long, a line over
    69 characters, a character the framing cannot carry, or a signal that would end the
    message early."""
    if len(text) > max_length:
        return f"the text is {len(text)} characters; at most {max_length}"
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) > MAX_LINE:
            return f"line {number} of the text is {len(line)} characters; at most {MAX_LINE}"
    if framing is Framing.ITA2:
        bad = sorted(set(text) - ITA2_CHARACTERS)
        if bad:
            return f"the text has characters ITA-2 cannot carry: {''.join(bad)!r}"
        if "ZCZC" in text or "NNNN" in text:
            return "the text holds a start or end-of-message signal (ZCZC, NNNN)"
    else:
        bad = sorted(c for c in set(text) if not (c == "\n" or (c.isascii() and c.isprintable())))
        if bad:
            return f"the text has characters IA-5 text cannot carry: {''.join(bad)!r}"
    return None


def encode(message: AFTNMessage, framing: Framing) -> bytes:
    """The message's octets on the connection (it needs its transmission identification)."""
    if not message.transmission_id:
        raise AFTNFormatError("a message is sent with a transmission identification")
    heading = message.transmission_id + (f" {message.service_info}" if message.service_info else "")
    lines = [heading]
    addressees = message.addressees
    for start in range(0, len(addressees), PER_LINE):
        group = " ".join(addressees[start : start + PER_LINE])
        lines.append(f"{message.priority} {group}" if start == 0 else group)
    origin = f"{message.filing_time} {message.originator}"
    if message.ohi:
        origin += f" {message.ohi}"
    text = message.text.replace("\r\n", "\n").rstrip("\n").replace("\n", "\r\n")
    if framing is Framing.IA5:
        alarm = BEL * 5 if message.priority is PriorityIndicator.SS else b""
        head = "\r\n".join(lines).encode("ascii") + b"\r\n"
        return (
            SOH + head + alarm + origin.encode("ascii") + b"\r\n"
            + STX + text.encode("ascii") + b"\r\n" + VT + ETX
        )  # fmt: skip
    body = "\r\n".join([f"ZCZC {lines[0]}", *lines[1:], origin, text])
    return (body + "\r\n" + PAGE_FEED + "NNNN\r\n").encode("ascii")


def decode(data: bytes, framing: Framing) -> AFTNMessage:
    """One message's octets (as the Deframer cuts them) as an AFTNMessage."""
    try:
        raw = data.decode("ascii")
    except UnicodeDecodeError:
        raise AFTNFormatError("the message has octets outside IA-5 (over 127)") from None
    raw = raw.replace("\x07", "")  # the priority alarm
    if framing is Framing.IA5:
        if not raw.startswith("\x01"):
            raise AFTNFormatError("an IA-5 message starts with SOH")
        head, stx, rest = raw[1:].partition("\x02")
        if not stx:
            raise AFTNFormatError("no STX: the origin line must end with it")
        text = rest.split("\x03", 1)[0].rstrip("\x0b").replace("\x0b", "")
    else:
        start = raw.find("ZCZC")
        if start < 0:
            raise AFTNFormatError("an ITA-2 message starts with ZCZC")
        end = raw.rfind("NNNN")
        if end < start:
            raise AFTNFormatError("no end-of-message signal NNNN")
        head, text = _split_ita2(raw[start + 4 : end].lstrip(" "))
    return _parse(head, text)


def _split_ita2(body: str) -> tuple[str, str]:
    """Heading, address and origin lines; then the text. The origin line is the first that
    starts with the six-digit filing time after the address."""
    lines = _LINE_END.split(body)
    for index, line in enumerate(lines[1:], 1):
        if _ORIGIN.fullmatch(line.strip()) and index >= 2:
            head = "\n".join(lines[: index + 1])
            return head, "\n".join(lines[index + 1 :])
    raise AFTNFormatError("no origin line (filing time DDHHMM and the originator)")


def _parse(head: str, text: str) -> AFTNMessage:
    lines = [line.strip() for line in _LINE_END.split(head.strip("\r\n")) if line.strip()]
    if len(lines) < 3:
        raise AFTNFormatError("a heading, an address and an origin line are needed")
    heading = _TRANSMISSION_ID.fullmatch(lines[0])
    if heading is None:
        raise AFTNFormatError(f"heading {lines[0]!r} is not a transmission identification")
    origin = _ORIGIN.fullmatch(lines[-1])
    if origin is None:
        raise AFTNFormatError(f"origin line {lines[-1]!r} is not DDHHMM and an originator")
    first = lines[1].split()
    try:
        priority = parse_indicator(first[0])
    except ValueError as exc:
        raise AFTNFormatError(f"address line: {exc}") from None
    addressees = tuple(first[1:]) + tuple(a for line in lines[2:-1] for a in line.split())
    body = _LINE_END.sub("\n", text).strip("\n")
    return AFTNMessage(
        priority=priority,
        addressees=addressees,
        filing_time=origin["time"],
        originator=origin["originator"],
        ohi=(origin["ohi"] or "").strip(),
        text=body,
        transmission_id=heading["circuit"] + heading["number"],
        service_info=(heading["info"] or "").strip(),
    )


class Deframer:
    """Cuts the octets read from a connection into messages: SOH … ETX (ia5) or ZCZC …
    NNNN (ita2). What comes between messages (channel fill, line ends) is dropped; a
    message longer than MAX_MESSAGE is dropped whole and counted in `discarded`."""

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._buffer = bytearray()
        self.discarded = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        start_mark, end_mark = (SOH, ETX) if self.framing is Framing.IA5 else (START_ITA2, END_ITA2)
        found: list[bytes] = []
        while True:
            start = self._buffer.find(start_mark)
            if start < 0:
                # Keep a tail that may be the start of a start signal split by the read.
                del self._buffer[: max(0, len(self._buffer) - len(start_mark) + 1)]
                return found
            end = self._buffer.find(end_mark, start + len(start_mark))
            if end < 0:
                del self._buffer[:start]
                if len(self._buffer) > MAX_MESSAGE:
                    self.discarded += 1
                    del self._buffer[: len(start_mark)]  # look for the next start
                    continue
                return found
            stop = end + len(end_mark)
            found.append(bytes(self._buffer[start:stop]))
            del self._buffer[:stop]
