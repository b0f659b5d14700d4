"""The AFTN/AMHS gateway's conversions (ICAO Doc 9880 Part II, the ATN Message Transfer and
Control Unit), sans-I/O: an AFTN message to the AMHS message that carries it as an ATS
message, an AMHS message to the AFTN message its AFTN recipients get, and the AFTN service
messages the gateway sends when a conversion cannot be made whole.

A failure to convert an AMHS message is a `ConversionError` whose detail begins with the
enhanced status code the non-delivery report is made from (waypost.x400.report_maker):
5.6.x content, 5.3.4 too long, 5.1.1 an address, 5.5.4 the originator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from waypost.address import AddressError, format_slash, parse_oraddress
from waypost.amhs.addressing import AddressingError, Register
from waypost.amhs.aftn import AFTNFormatError, AFTNMessage, Framing, check_text
from waypost.amhs.ats import ATSHeader, ATSHeaderError, ATSMessage, EndOfHeading, read_ats
from waypost.amhs.priority import PriorityIndicator
from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.x400.ipm_bodies_ber import UnsupportedBodyPartError
from waypost.x400.ipm_codec import IPMContentError, NotAnIPMError, decode_ipm, encode_ipm


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """What the conversions need: the register, the gateway's own AFTN address, this MTA's
    global domain (for MTS identifiers), the header's end, and the AFTN text's limit."""

    register: Register
    aftn_address: str
    global_domain: str
    end_of_heading: EndOfHeading = EndOfHeading.CRLF
    max_text_length: int = 1800


class ConversionError(ValueError):
    """An AMHS message the gateway cannot convert; `detail` starts with its status code."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def filing_time(now: float) -> str:
    """DDHHMM, UTC: the filing time of a message filed at `now`."""
    return datetime.fromtimestamp(now, UTC).strftime("%d%H%M")


# -- AFTN → AMHS ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FromAFTN:
    """What an AFTN message becomes: the AMHS message for the addressees the register
    maps (None when none does, or the originator is not known), and the service message
    to send back for what could not be converted (None when all was)."""

    message: Message | None
    unknown: tuple[str, ...]
    service: AFTNMessage | None


def aftn_to_amhs(aftn: AFTNMessage, settings: GatewaySettings, now: float) -> FromAFTN:
    """The AMHS message that carries an AFTN message: an IPM whose text begins with the
    ATS message header (priority indicator, filing time, optional heading information),
    the envelope priority the indicator maps to, the originator's and addressees' XF or
    CAAS O/R addresses. Addressees the register cannot map are left out and named in an
    `SVC ADS … UNKNOWN` service message to the originator; an originator it cannot map
    gets the whole message refused by `SVC QTA OGN … INCORRECT` (Annex 10 Volume II
    §4.4.11.15)."""
    register = settings.register
    try:
        originator = format_slash(register.to_oraddress(aftn.originator))
    except AddressingError:
        return FromAFTN(None, (), incorrect_originator(aftn, settings, now))
    recipients: list[str] = []
    unknown: list[str] = []
    for addressee in aftn.addressees:
        try:
            recipients.append(format_slash(register.to_oraddress(addressee)))
        except AddressingError:
            unknown.append(addressee)
    service = unknown_addressees(aftn, tuple(unknown), settings, now) if unknown else None
    if not recipients:
        return FromAFTN(None, tuple(unknown), service)
    header = ATSHeader(aftn.priority, aftn.filing_time, aftn.ohi)
    ats = ATSMessage(
        header=header, originator=originator, recipients=tuple(recipients), text=aftn.text
    )
    local = _local_id(aftn)
    content = encode_ipm(ats.ipm(local, settings.end_of_heading))
    gdi = parse_oraddress(settings.global_domain)
    envelope = Envelope(
        mts_id=f"{format_slash(gdi)};{local}",
        originator=originator,
        recipients=[
            Recipient(address=r, originally_specified_number=n) for n, r in enumerate(recipients, 1)
        ],
        content_type=ContentType.P22,
        encoded_information_types=["ia5-text"],
        priority=ats.envelope_priority,
        arrival=now,
    )
    return FromAFTN(Message(envelope=envelope, content=content), tuple(unknown), service)


def _local_id(aftn: AFTNMessage) -> str:
    """A user-relative identifier that names the AFTN message it came from: the transmission
    identification, filing time and originator, and a random part (IPM identifiers and MTS
    identifiers must be unique; AFTN's are only for a day)."""
    tid = aftn.transmission_id or "AFTN"
    return f"{tid}-{aftn.filing_time}-{aftn.originator}-{os.urandom(4).hex()}"


def incorrect_originator(aftn: AFTNMessage, settings: GatewaySettings, now: float) -> AFTNMessage:
    """Annex 10 Volume II §4.4.11.15: the message is refused to the station that sent it —
    `SVC QTA OGN <transmission identification> INCORRECT` to its originator."""
    tid = aftn.transmission_id or aftn.filing_time
    return _service(aftn, f"SVC QTA OGN {tid} INCORRECT", settings, now)


def unknown_addressees(
    aftn: AFTNMessage, unknown: tuple[str, ...], settings: GatewaySettings, now: float
) -> AFTNMessage:
    """The service message naming addressee indicators the gateway cannot reach."""
    lines = [
        f"SVC ADS {aftn.filing_time} {aftn.originator}",
        f"{aftn.priority} {' '.join(aftn.addressees)}"[:69],
        f"UNKNOWN {' '.join(unknown)}"[:69],
    ]
    return _service(aftn, "\n".join(lines), settings, now)


def _service(aftn: AFTNMessage, text: str, settings: GatewaySettings, now: float) -> AFTNMessage:
    """A service message from the gateway to the originator of `aftn`, at its priority."""
    return AFTNMessage(
        priority=aftn.priority,
        addressees=(aftn.originator,),
        filing_time=filing_time(now),
        originator=settings.aftn_address,
        text=text,
    )


# -- AMHS → AFTN ------------------------------------------------------------------------


def amhs_to_aftn(
    envelope: Envelope,
    content: bytes,
    recipients: list[str],
    settings: GatewaySettings,
    framing: Framing,
) -> AFTNMessage:
    """The AFTN message for these recipients (O/R address texts) of an AMHS message: the
    ATS message header gives its priority indicator, filing time and optional heading
    information (a message without one: the indicator its envelope priority stands for,
    filed when it arrived); the text body part gives its text. ConversionError when it
    cannot travel on AFTN (Doc 9880 Part II: a non-delivery report says why)."""
    if envelope.content_type != ContentType.P22:
        raise ConversionError(
            f"5.6.1 unable to convert to AFTN: content type {envelope.content_type} is not "
            "an interpersonal message (P22)"
        )
    try:
        ipm = decode_ipm(content)
        read = read_ats(ipm, envelope.priority)
    except ATSHeaderError as exc:
        raise ConversionError(
            f"5.6.0 unable to convert to AFTN due to ATS-Message-Header syntax error: {exc}"
        ) from None
    except (NotAnIPMError, IPMContentError, UnsupportedBodyPartError) as exc:
        raise ConversionError(f"5.6.0 unable to convert to AFTN: {exc}") from None
    if len(ipm.body) != 1 or read.files or read.other_parts:
        raise ConversionError("5.6.0 unable to convert to AFTN due to multiple body parts")
    text = read.text.replace("\r\n", "\n").rstrip("\n")
    problem = check_text(text, framing, max_length=settings.max_text_length)
    if problem is not None:
        code = "5.3.4" if problem.startswith("the text is") else "5.6.0"
        reason = "message text length" if code == "5.3.4" else "unsupported characters"
        raise ConversionError(f"{code} unable to convert to AFTN due to {reason}: {problem}")
    register = settings.register
    try:
        originator = register.to_aftn(parse_oraddress(envelope.originator))
    except (AddressingError, AddressError) as exc:
        raise ConversionError(
            f"5.5.4 unable to convert to AFTN due to unrecognized originator O/R address: {exc}"
        ) from None
    addressees: list[str] = []
    for recipient in recipients:
        try:
            addressees.append(register.to_aftn(parse_oraddress(recipient)))
        except (AddressingError, AddressError) as exc:
            raise ConversionError(f"5.1.1 no AFTN address for {recipient}: {exc}") from None
    header = read.header
    filed = header.filing_time if header is not None else filing_time(envelope.arrival)
    try:
        return AFTNMessage(
            priority=read.priority,
            addressees=tuple(addressees),
            filing_time=filed,
            originator=originator,
            ohi=header.ohi if header is not None else "",
            text=text,
        )
    except AFTNFormatError as exc:
        raise ConversionError(f"5.6.0 unable to convert to AFTN: {exc}") from None


def acknowledgement(original: AFTNMessage, settings: GatewaySettings, now: float) -> AFTNMessage:
    """The acknowledgement of an SS message, `R <filing time> <originator>` of the message
    acknowledged, at priority SS to its originator (Annex 10 Volume II §4.4.1.2.3)."""
    return AFTNMessage(
        priority=PriorityIndicator.SS,
        addressees=(original.originator,),
        filing_time=filing_time(now),
        originator=settings.aftn_address,
        text=f"R {original.filing_time} {original.originator}",
    )
