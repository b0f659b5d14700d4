"""The one internal message model: an envelope that carries X.400 P1 and SMTP semantics.

Addresses are kept in their canonical text forms (an RFC 5321 mailbox, or an
X.400 O/R address in the RFC 1685 form `/C=GB/ADMD= /PRMD=Acme/S=Smith/`);
`waypost.address` parses them. Envelopes are msgspec structs, so that
encoding them for the MTA database is fast and decoding them validates
every field's type.
"""

from __future__ import annotations

import enum
import os
import time

import msgspec


class Priority(enum.IntEnum):
    """X.411 Priority (X.411 §8.2.1.1.1.8)."""

    NORMAL = 0
    NON_URGENT = 1
    URGENT = 2

    @property
    def rank(self) -> int:
        """The order the queue serves it in: urgent 0, normal 1, non-urgent 2."""
        return _RANKS[self]

    @property
    def label(self) -> str:
        """Its name as X.411 and RFC 2156 write it: urgent, normal, non-urgent."""
        return self.name.lower().replace("_", "-")


_RANKS = {Priority.URGENT: 0, Priority.NORMAL: 1, Priority.NON_URGENT: 2}
# The priorities in the order the queue serves them.
BY_RANK = (Priority.URGENT, Priority.NORMAL, Priority.NON_URGENT)


class ReportRequest(enum.IntEnum):
    """What the originator asked to hear about a recipient (X.411 originator-report-request).

    The SMTP side maps NOTIFY onto it: NEVER → NONE, FAILURE → NON_DELIVERY,
    SUCCESS → ALWAYS.
    """

    NONE = 0
    NON_DELIVERY = 1
    ALWAYS = 2


class Notify(enum.StrEnum):
    """RFC 3461 NOTIFY keywords."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


class Ret(enum.StrEnum):
    """RFC 3461 RET: how much of the message a failure report returns."""

    FULL = "FULL"
    HDRS = "HDRS"


class ContentType:
    """Content types Waypost knows by name; others are `builtin:N` or `oid:1.2.…`."""

    INTERNET = "rfc5322"
    P2 = "builtin:2"
    P22 = "builtin:22"
    P772 = "oid:1.3.26.0.4406.0.4.1"
    # What a stored X.400 report holds: its ReportTransferContent (not a P1 content type).
    X400_REPORT = "x400-report"


class ObjectKind(enum.StrEnum):
    """The three things MTAs transfer (X.411 MTS-APDU): messages, reports and probes."""

    MESSAGE = "message"
    REPORT = "report"
    PROBE = "probe"


class P1Extra(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a received P1 envelope held that Waypost relays without modelling, as BER.

    `unknown` are envelope SET members (per-domain bilateral information,
    fields of later editions), `eit_extra` non-basic encoded-information-type
    parameters, `names` the ORName encodings (by canonical text) that carry a
    directory name or extension attributes the text form cannot hold.
    """

    unknown: list[bytes] = []
    eit_extra: list[bytes] = []
    names: dict[str, bytes] = {}


class Extension(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A P1 extension field, kept even when Waypost does not understand it.

    `type` is a standard extension integer (`"3"`) or an OID (`"1.2.840…"`);
    `value` is the BER encoding of the value, untouched.
    """

    type: str
    critical_for: list[str] = []
    value: bytes = b""


class TraceElement(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One hop of X.411 trace information (or an SMTP Received: hop)."""

    domain: str
    arrival: float
    action: str = "relayed"
    converted_eits: list[str] = []
    attempted_domain: str | None = None


class Recipient(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A recipient of the envelope with its per-recipient fields."""

    address: str
    originally_specified_number: int = 0
    report_request: ReportRequest = ReportRequest.NON_DELIVERY
    mta_report_request: ReportRequest = ReportRequest.NON_DELIVERY
    responsibility: bool = True
    explicit_conversion: int | None = None
    notify: list[Notify] = []
    orcpt: str | None = None
    extensions: list[Extension] = []
    # Per-recipient SET members of a received P1 envelope Waypost does not model, as BER.
    p1_unknown: list[bytes] = []


class Envelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Everything an MTA needs to know to transfer a message, from either world.

    `originator` is the X.400 originator O/R name or the SMTP reverse path;
    the empty string is the null reverse path `<>` (a report), which must
    never itself be reported on.
    """

    mts_id: str
    originator: str
    recipients: list[Recipient]
    content_type: str = ContentType.INTERNET
    content_id: str | None = None
    encoded_information_types: list[str] = []
    priority: Priority = Priority.NORMAL
    per_message_indicators: list[str] = []
    deferred_delivery: float | None = None
    trace: list[TraceElement] = []
    extensions: list[Extension] = []
    arrival: float = 0.0
    # RFC 3461 and RFC 6152/6531 parameters of the SMTP envelope.
    ret: Ret | None = None
    envid: str | None = None
    body: str | None = None
    smtputf8: bool = False
    is_report: bool = False
    # Every line of the content ends in CRLF, with no bare CR or LF (RFC 5321 §2.3.8), as
    # checked where it was made (the SMTP server, the gateway's writer): the SMTP client
    # sends it without scanning it again for line ends to normalise.
    crlf: bool = False
    # X.400: a message, a report (content = the ReportTransferContent's BER; the
    # one recipient is the report destination) or a probe (no content).
    object_kind: ObjectKind = ObjectKind.MESSAGE
    content_length: int | None = None
    p1: P1Extra | None = None


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An envelope and its content, as it is handed to the store to enqueue."""

    envelope: Envelope
    content: bytes


class EnvelopeError(ValueError):
    """An envelope that does not decode or whose values are out of range."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    """The compact form the MTA database keeps."""
    return _ENCODER.encode(envelope)


def decode_envelope(data: bytes) -> Envelope:
    """Decode and validate; raises EnvelopeError naming what is wrong."""
    try:
        envelope = _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        # ValueError covers UnicodeDecodeError: a damaged string inside the envelope.
        raise EnvelopeError(f"envelope does not decode: {exc}") from None
    validate_envelope(envelope)
    return envelope


def validate_envelope(envelope: Envelope) -> None:
    """Values in range beyond what the types say."""
    if not envelope.mts_id:
        raise EnvelopeError("empty MTS identifier")
    if not envelope.recipients:
        raise EnvelopeError("no recipients")
    for index, recipient in enumerate(envelope.recipients):
        if not recipient.address:
            raise EnvelopeError(f"recipient {index} has an empty address")


def new_mts_id(domain: str = "localhost") -> str:
    """A unique MTS identifier local part: time-ordered, then random."""
    return f"{int(time.time() * 1000):x}.{os.urandom(6).hex()}@{domain}"


# How far into an RFC 5322 content its Message-ID is looked for (RFC 5322 §3.6.4).
_HEADER_SCAN = 64 * 1024


def header_message_id(content: bytes) -> str | None:
    """The Message-ID field of RFC 5322 content (the first one, unfolded), for tracking;
    None when its header, within the first 64 KiB, has none."""
    head = content[:_HEADER_SCAN]
    end = head.find(b"\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    if end >= 0:
        head = head[: end + 1]
    low = head.lower()
    start = 0 if low.startswith(b"message-id:") else low.find(b"\nmessage-id:") + 1
    if start <= 0 and not low.startswith(b"message-id:"):
        return None
    value_at = start + len(b"message-id:")
    stop = value_at
    while True:  # the field runs on over continuation lines (RFC 5322 §2.2.3)
        stop = head.find(b"\n", stop)
        if stop < 0 or stop + 1 >= len(head) or head[stop + 1] not in b" \t":
            break
        stop += 1
    raw = head[value_at : len(head) if stop < 0 else stop]
    value = b" ".join(raw.split()).decode("utf-8", "replace")
    return value[:998] or None
