"""Interpersonal messages (X.420 P2/P22, and STANAG 4406 P772's heading): a readable summary of
an IPM's heading for operators, and a simple IPM (heading + one ia5-text body part) to submit.

Waypost relays IPM content untouched; it only reads it to show it, and writes it
when `waypost submit` wraps a text for X.400 recipients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from waypost.address import parse_oraddress
from waypost.asn1 import (
    IA5_STRING,
    OID,
    PRINTABLE_STRING,
    SEQUENCE,
    SET,
    TELETEX_STRING,
    Element,
    application,
    constructed,
    context,
    decode,
    encode_string,
    sequence,
)
from waypost.x400.ipm_heading import HeadingExtension, ORDescriptor
from waypost.x400.p1_names import OR_NAME, decode_orname, encode_orname
from waypost.x400.p772 import (
    MESSAGE_TYPE_NAMES,
    P772_ARC,
    PRECEDENCE_NAMES,
    RECIPIENT_KINDS,
    AddressListDesignator,
    DistributionCodes,
    MessageType,
    OtherRecipient,
    P772Error,
    PilotInformation,
    decode_p772_extension,
)

IPM = context(0, True)
IPN = context(1, True)
THIS_IPM = application(11, True)
ORIGINATOR = context(0, True)
PRIMARY, COPY, BLIND = context(2, True), context(3, True), context(4, True)
SUBJECT = context(8, True)
RECIPIENT = context(0, True)
FREE_FORM_NAME = context(0, True)
IA5_TEXT = context(0, True)
HEADING_EXTENSIONS = context(15, True)

# STANAG 4406 heading extensions (1.3.26.0.4406.0.2.n) shown by `waypost queue show`,
# by their last arc; read by waypost.x400.p772.
P772_FIELDS = {
    0: "Precedence",
    1: "Copy precedence",
    2: "Message type",
    3: "Address list",
    4: "Exempted",
    5: "Authorised at",
    6: "Distribution",
    7: "Handling",
    8: "Instructions",
    9: "Codress",
    10: "Originator ref",
    11: "Other recipients",
    12: "Pilot forwarding",
    13: "ACP127 id",
    14: "Originator PLAD",
    17: "Information labels",
}

# X.420 §7.4 BodyPart tags, for naming the parts of a body (1984's names where X.420
# (1984) had a part that 1988 dropped).
BODY_PARTS = {
    0: "ia5-text",
    1: "telex",
    2: "voice",
    3: "g3-facsimile",
    4: "g4-class1",
    5: "teletex",
    6: "videotex",
    7: "nationally-defined",
    8: "encrypted",
    9: "message",
    10: "sfd",
    11: "mixed-mode",
    14: "bilaterally-defined",
    15: "extended",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class IPMSummary:
    """What `waypost queue show` prints of an IPM."""

    kind: str
    this_ipm: str | None = None
    originator: str | None = None
    primary: list[str] = field(default_factory=list)
    copy: list[str] = field(default_factory=list)
    blind: list[str] = field(default_factory=list)
    subject: str | None = None
    body_parts: list[str] = field(default_factory=list)
    text: str | None = None
    # STANAG 4406 (P772) heading fields, label → readable value, in the order received.
    military: list[tuple[str, str]] = field(default_factory=list)


def _descriptor(element: Element) -> str:
    """An ORDescriptor: its formal name as O/R text, else its free-form name."""
    for item in element:
        if item.tag == OR_NAME:
            return decode_orname(item).text
        # X.420 §7.2.3: free-form-name [0] IMPLICIT TeletexString (primitive); a
        # constructed [0] some agents send is read as well.
        if item.tag in (FREE_FORM_NAME, FREE_FORM_NAME.primitive()):
            return item.as_string(TELETEX_STRING, check=False)
    return "(no name)"


def _recipients(element: Element) -> list[str]:
    names = []
    for specifier in element:
        recipient = specifier.find(RECIPIENT) if specifier.tag.constructed else None
        if recipient is not None:
            names.append(_descriptor(recipient))
    return names


def _text(element: Element) -> str:
    """A string of any X.400 string type, read leniently."""
    kind = element.tag if element.tag.cls.name == "UNIVERSAL" else TELETEX_STRING
    return element.as_string(kind, check=False)


def summarize_ipm(content: bytes) -> IPMSummary:
    """The heading and body part kinds of an IPM (or that it is an IPN); raises BERError, or
    another ValueError (an O/R name that is not a valid address)."""
    ipm = decode(content, name="ipm").expect(IPM, IPN)
    if ipm.tag == IPN:
        return IPMSummary(kind="ipn")
    heading, body = ipm.child(0, "heading").expect(SET), ipm.child(1, "body").expect(SEQUENCE)
    fields: dict[str, object] = {}
    for item in heading:
        if item.tag == THIS_IPM:
            parts = list(item)
            who = decode_orname(parts[0]).text if parts and parts[0].tag == OR_NAME else ""
            local = _text(parts[-1]) if parts and not parts[-1].tag.constructed else ""
            fields["this_ipm"] = f"{who} {local}".strip()
        elif item.tag == ORIGINATOR:
            fields["originator"] = _descriptor(item)
        elif item.tag in (PRIMARY, COPY, BLIND):
            key = {PRIMARY: "primary", COPY: "copy", BLIND: "blind"}[item.tag]
            fields[key] = _recipients(item)
        elif item.tag == SUBJECT:
            inner = list(item)
            fields["subject"] = _text(inner[0]) if len(inner) == 1 else "(malformed subject)"
        elif item.tag == HEADING_EXTENSIONS:
            fields["military"] = _p772_fields(item)
    kinds: list[str] = []
    text = None
    for part in body:
        kinds.append(BODY_PARTS.get(part.tag.number, f"[{part.tag.number}]"))
        if part.tag == IA5_TEXT and text is None:
            data = [c for c in part if c.tag == IA5_STRING]
            text = data[0].as_string(IA5_STRING, check=False) if data else None
    return IPMSummary(kind="ipm", body_parts=kinds, text=text, **fields)  # type: ignore[arg-type]


def _p772_fields(extensions: Element) -> list[tuple[str, str]]:
    """The STANAG 4406 heading extensions among `extensions`, as (label, value)."""
    found = []
    for extension in extensions:
        parts = extension.expect(SEQUENCE, name="heading-extension").children()
        oid = parts[0].expect(OID, name="type").as_oid() if parts else ""
        if not oid.startswith(P772_ARC) or len(parts) != 2:
            continue
        number = int(oid.rpartition(".")[2])
        label = P772_FIELDS.get(number, f"P772 field {number}")
        try:
            attribute, value = decode_p772_extension(
                HeadingExtension(type=oid, value=bytes(parts[1].raw))
            )
        except P772Error:
            found.append((label, "(unreadable)" if number in P772_FIELDS else "(present)"))
            continue
        if attribute.endswith("precedence") and 0 <= value < len(PRECEDENCE_NAMES):
            found.append((label, PRECEDENCE_NAMES[value]))
        else:
            found.append((label, _p772_text(value)))
    return found


def _p772_text(value: object) -> str:
    """A readable form of a decoded STANAG 4406 field value."""
    if isinstance(value, tuple):
        return "; ".join(_p772_text(item) for item in value) or "(empty)"
    if isinstance(value, bytes | PilotInformation):
        return "(present)"
    if isinstance(value, MessageType):
        code = value.type
        text = MESSAGE_TYPE_NAMES[code] if 0 <= code < len(MESSAGE_TYPE_NAMES) else str(code)
        return text if value.identifier is None else f"{text} {value.identifier}"
    if isinstance(value, ORDescriptor):
        return value.address or value.free_form_name or ""
    if isinstance(value, AddressListDesignator):
        return f"{RECIPIENT_KINDS[value.type]} {value.list_name.address}"
    if isinstance(value, OtherRecipient):
        return f"{RECIPIENT_KINDS[value.type]} {value.designator}"
    if isinstance(value, DistributionCodes):
        extra = f" (+{len(value.extensions)} extensions)" if value.extensions else ""
        return ", ".join(value.sics) + extra
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_PRINTABLE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)


def _printable(text: str) -> str:
    return "".join(c if c in _PRINTABLE_CHARS else "." for c in text)


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _orname(text: str) -> bytes:
    return encode_orname(parse_oraddress(text))


def build_ipm(
    *, originator: str, recipients: list[str], subject: str, text: str, ipm_id: str
) -> bytes:
    """A P22 IPM: heading (this-IPM, originator, primary recipients, subject) and one
    ia5-text body part. Addresses are O/R address texts; raises AddressError."""
    heading = constructed(
        SET,
        constructed(
            THIS_IPM, _orname(originator), encode_string(PRINTABLE_STRING, _printable(ipm_id)[:64])
        ),
        constructed(ORIGINATOR, _orname(originator)),
        constructed(
            PRIMARY,
            *(constructed(SET, constructed(RECIPIENT, _orname(r))) for r in recipients),
        ),
        constructed(SUBJECT, encode_string(TELETEX_STRING, _latin1(subject)[:128])),
    )
    text = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii", "replace").decode()
    body = sequence(constructed(IA5_TEXT, constructed(SET), encode_string(IA5_STRING, text)))
    return constructed(IPM, heading, body)
