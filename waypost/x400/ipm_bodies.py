"""A typed model of the IPM body parts the MIXER gateway converts (X.420 §7.4): ia5-text,
general-text, message, bilaterally-defined and the file-transfer body part."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# X.420 §7.4.12: general-text names its repertoire by ISO International Register
# (ISO 2375) numbers. The G0 set ASCII is 6; each ISO 8859 part has the number of its
# right-hand (G1) set. RFC 2157 §6.2 maps these to the MIME charset names.
ASCII_G0 = 6
ISO_8859_REGISTRATIONS: dict[str, int] = {
    "iso-8859-1": 100,
    "iso-8859-2": 101,
    "iso-8859-3": 109,
    "iso-8859-4": 110,
    "iso-8859-5": 144,
    "iso-8859-6": 127,
    "iso-8859-7": 126,
    "iso-8859-8": 138,
    "iso-8859-9": 148,
}
OCTET_STREAM = "application/octet-stream"


def _crlf(text: str) -> str:
    """Text with every line ending as CRLF, the form X.420 text body parts carry."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class IA5Text:
    """An ia5-text body part (X.420 §7.4.1): US-ASCII text, lines ending in CRLF — or, with
    `exact`, as given (an ATS message header in its original form ends its lines in LF:
    waypost.amhs.ats)."""

    text: str
    exact: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not self.text.isascii():
            raise ValueError("ia5-text: the text has characters outside IA5 (US-ASCII)")
        if not self.exact:
            object.__setattr__(self, "text", _crlf(self.text))


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneralText:
    """A general-text body part (X.420 §7.4.12) in one ISO 8859 repertoire, named by its
    MIME charset (the keys of ISO_8859_REGISTRATIONS); lines end in CRLF."""

    charset: str
    text: str

    def __post_init__(self) -> None:
        charset = self.charset.lower()
        if charset not in ISO_8859_REGISTRATIONS:
            raise ValueError(f"general-text: charset {self.charset!r} is not an ISO 8859 part")
        self.text.encode(charset)  # raises UnicodeEncodeError (a ValueError) if it cannot
        object.__setattr__(self, "charset", charset)
        object.__setattr__(self, "text", _crlf(self.text))

    @property
    def registrations(self) -> tuple[int, ...]:
        """The character set registration numbers X.420 carries for this repertoire."""
        return (ASCII_G0, ISO_8859_REGISTRATIONS[self.charset])


def charset_of_registrations(numbers: tuple[int, ...] | frozenset[int]) -> str | None:
    """The MIME charset of a general-text repertoire, or None if it names no ISO 8859 part
    (or more than one). Control-function sets in the list are ignored."""
    found = [name for name, number in ISO_8859_REGISTRATIONS.items() if number in numbers]
    if len(found) == 1:
        return found[0]
    if not found and ASCII_G0 in numbers:
        return "us-ascii"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BilaterallyDefined:
    """A bilaterally-defined body part (X.420 §7.4): octets with no stated type."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FileTransfer:
    """A file-transfer body part (FTBP, an extended body part of X.420 §7.4.12): a file's
    octets, its name (the FTBP's pathname), its creation and last-modification times
    (FTAM file attributes) and, when it encapsulates a MIME entity (RFC 2157 §3.1.1),
    the MIME type and parameters of that entity."""

    data: bytes
    filename: str | None = None
    content_type: str = OCTET_STREAM
    parameters: tuple[tuple[str, str], ...] = ()
    created: datetime | None = None
    modified: datetime | None = None

    def __post_init__(self) -> None:
        maintype, slash, subtype = self.content_type.partition("/")
        if not slash or not maintype or not subtype:
            raise ValueError(f"file-transfer: content type {self.content_type!r} is not type/sub")
        object.__setattr__(self, "content_type", self.content_type.lower())
        lowered = tuple((name.lower(), value) for name, value in self.parameters)
        object.__setattr__(self, "parameters", lowered)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagePart:
    """A message body part (X.420 §7.4): a forwarded IPM, its heading and body.

    The heading is opaque here: the heading mapping gives it a type of its own and
    converts it through the hook the body conversion takes (waypost.mixer.bodies)."""

    heading: object
    body: tuple[BodyPart, ...] = field(default_factory=tuple)


BodyPart = IA5Text | GeneralText | BilaterallyDefined | FileTransfer | MessagePart
