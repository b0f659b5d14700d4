"""ATS messages over AMHS (ICAO Doc 9880 Part II, the Basic ATS Message Service): an IPM
whose one text body part begins with the ATS message header — the priority indicator, the
filing time and the optional heading information, given together — and then the message's
text. The header is three lines, `PRI: `, `FT: ` and `OHI: ` each followed by its value,
then an end of heading: a blank line of CRLF (the amended form, which common user agents
need), of LF (the original form), or none, as `EndOfHeading` says. Reading accepts the three.

The Extended service carries the header's three fields in IPM heading fields instead
(waypost.amhs.extended), and adds body parts after the text: a file-transfer body part
carries binary data such as IWXXM or BUFR (its name and octets whole).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from waypost.amhs.extended import heading_fields, read_heading_fields
from waypost.amhs.priority import PriorityIndicator, indicator_of, parse_indicator
from waypost.message import Priority
from waypost.x400.ipm_bodies import BodyPart, FileTransfer, GeneralText, IA5Text
from waypost.x400.ipm_codec import InterpersonalMessage
from waypost.x400.ipm_heading import HeadingExtension, IPMHeading, IPMIdentifier, ORDescriptor

# The optional heading information fits the AFTN origin line (69 characters) beside the
# filing time, the originator and their spaces: 53 characters; 48 for an SS message, whose
# origin line also carries the priority alarm (Annex 10 Volume II §4.4.15.2.2.6).
MAX_OHI = 53
MAX_OHI_SS = 48

_FILING_TIME = re.compile(r"(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9]")
_HEADER = re.compile(
    r"PRI: ?(?P<pri>[A-Z]{2}) *\r?\n"
    r"FT: ?(?P<ft>[0-9]{6}) *\r?\n"
    r"(?:OHI:(?P<ohi>[^\r\n]*)\r?\n)?"
    r"(?P<eoh>\r?\n)?"
)


class EndOfHeading(enum.StrEnum):
    """How the ATS message header ends (configurable: implementations differ)."""

    CRLF = "crlf"  # a blank line, CRLF: the header lines end in CRLF too
    LF = "lf"  # the original form: LF after each line, and a blank line of LF
    NONE = "none"  # the header lines end in CRLF, and the text follows at once


class ATSHeaderError(ValueError):
    """An ATS message header field that breaks its rules; the message says which."""


@dataclass(frozen=True, slots=True)
class ATSHeader:
    """The ATS message header: priority indicator, filing time (DDHHMM, UTC) and optional
    heading information."""

    priority: PriorityIndicator
    filing_time: str
    ohi: str = ""

    def __post_init__(self) -> None:
        if not _FILING_TIME.fullmatch(self.filing_time):
            raise ATSHeaderError(
                f"filing time {self.filing_time!r} is not DDHHMM (day 01-31, hour 00-23, "
                "minute 00-59)"
            )
        limit = MAX_OHI_SS if self.priority is PriorityIndicator.SS else MAX_OHI
        if len(self.ohi) > limit:
            raise ATSHeaderError(
                f"optional heading information is {len(self.ohi)} characters; at most {limit} "
                f"for a {self.priority} message"
            )
        if not (self.ohi.isascii() and self.ohi.isprintable()):
            raise ATSHeaderError("optional heading information must be printable IA5 text")

    def render(self, end: EndOfHeading = EndOfHeading.CRLF) -> str:
        """The header as it begins the text body part."""
        newline = "\n" if end is EndOfHeading.LF else "\r\n"
        lines = [f"PRI: {self.priority}", f"FT: {self.filing_time}", f"OHI: {self.ohi}"]
        blank = "" if end is EndOfHeading.NONE else newline
        return newline.join(lines) + newline + blank


def split_header(text: str) -> tuple[ATSHeader | None, str]:
    """The ATS message header at the start of a body part's text, if it has one, and the
    text after it. A header that is there but breaks its rules raises ATSHeaderError."""
    match = _HEADER.match(text)
    if match is None:
        return None, text
    try:
        priority = parse_indicator(match["pri"])
    except ValueError as exc:
        raise ATSHeaderError(str(exc)) from None
    ohi = (match["ohi"] or "").strip()
    return ATSHeader(priority, match["ft"], ohi), text[match.end() :]


@dataclass(frozen=True, slots=True, kw_only=True)
class ATSMessage:
    """An ATS message between AMHS users: the header, who from and to (O/R address texts),
    the text, and (Extended service) files carried beside it."""

    header: ATSHeader
    originator: str
    recipients: tuple[str, ...]
    text: str
    subject: str = ""
    files: tuple[FileTransfer, ...] = field(default=())
    # The Extended service: the header's fields in the IPM heading, the text alone.
    extended: bool = False

    @property
    def envelope_priority(self) -> Priority:
        return self.header.priority.envelope_priority

    def ipm(self, ipm_id: str, end: EndOfHeading = EndOfHeading.CRLF) -> InterpersonalMessage:
        """The IPM that carries it. An SS message asks each recipient for a receipt
        notification, which the AFTN side acknowledges (Annex 10 Volume II: SS messages
        are acknowledged)."""
        notifications = (
            frozenset({"rn"}) if self.header.priority is PriorityIndicator.SS else frozenset()
        )
        header = self.header
        extensions: tuple[HeadingExtension, ...] = ()
        per_recipient: tuple[HeadingExtension, ...] = ()
        if self.extended:
            extensions, precedence = heading_fields(
                header.priority, header.filing_time, header.ohi, datetime.now(UTC)
            )
            per_recipient = (precedence,)
        heading = IPMHeading(
            this_ipm=IPMIdentifier(user=self.originator, local=ipm_id[:64]),
            originator=ORDescriptor(address=self.originator),
            primary_recipients=tuple(
                ORDescriptor(
                    address=r,
                    notification_requests=notifications,
                    recipient_extensions=per_recipient,
                )
                for r in self.recipients
            ),
            subject=self.subject or None,
            other_extensions=extensions,
        )
        rendered = "" if self.extended else header.render(end)
        body_text = rendered + _text_lines(self.text, end)
        body: tuple[BodyPart, ...] = (IA5Text(text=body_text, exact=True), *self.files)
        return InterpersonalMessage(heading=heading, body=body)


def _text_lines(text: str, end: EndOfHeading) -> str:
    """The message's text with its lines ending as the header's do."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    return lines.replace("\n", "\n" if end is EndOfHeading.LF else "\r\n")


@dataclass(frozen=True, slots=True)
class ReadATS:
    """What an IPM says as an ATS message: its header (None when it has none: a message of
    the plain IPM service) or the priority indicator that stands for one, its text, and
    what else it carries."""

    header: ATSHeader | None
    priority: PriorityIndicator
    text: str
    files: tuple[FileTransfer, ...]
    other_parts: tuple[str, ...]


def read_ats(ipm: InterpersonalMessage, envelope_priority: Priority) -> ReadATS:
    """The ATS message an IPM carries: the header at the start of its first text body part
    (ia5-text or general-text), files, and the kinds of any other body parts.
    ATSHeaderError when the header is there but bad."""
    header: ATSHeader | None = None
    text = ""
    files: list[FileTransfer] = []
    other: list[str] = []
    for n, part in enumerate(ipm.body):
        if n == 0 and isinstance(part, IA5Text | GeneralText):
            header, text = split_header(part.text)
        elif isinstance(part, FileTransfer):
            files.append(part)
        else:
            other.append(type(part).__name__)
    if header is None:
        fields = read_heading_fields(ipm.heading)
        if fields is not None:
            header = ATSHeader(*fields)
    priority = header.priority if header is not None else indicator_of(envelope_priority)
    return ReadATS(header, priority, text, tuple(files), tuple(other))
