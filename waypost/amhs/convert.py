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
import re
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
from waypost.x400.ipn import IPNError, decode_ipn
from waypost.x400.p1_report import ReportContent

# X.411 NonDeliveryDiagnosticCode unrecognised-OR-name.
UNRECOGNISED_OR_NAME = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """What the conversions need: the register, the gateway's own AFTN address, this MTA's
    global domain (for MTS identifiers), the header's end, and the AFTN text's limit."""

    register: Register
    aftn_address: str
    global_domain: str
    end_of_heading: EndOfHeading = EndOfHeading.CRLF
    max_text_length: int = 1800
    # PRMD names (folded) whose users take the Extended service.
    extended_domains: frozenset[str] = frozenset()


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
    # The extended form only when every recipient takes it (EUR Doc 047 chooses so too).
    extended = bool(settings.extended_domains) and all(
        (parse_oraddress(r).prmd or "").casefold() in settings.extended_domains for r in recipients
    )
    ats = ATSMessage(
        header=header,
        originator=originator,
        recipients=tuple(recipients),
        text=aftn.text,
        extended=extended,
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
    identification, filing time, originator and priority, and a random part (IPM and MTS
    identifiers must be unique; AFTN's are only for a day). A receipt notification or a
    report names it, and so says which AFTN message it answers (`_answered`)."""
    tid = aftn.transmission_id or "AFTN"
    return f"{tid}-{aftn.filing_time}-{aftn.originator}-{aftn.priority}-{os.urandom(4).hex()}"


_LOCAL_ID = re.compile(
    r"[A-Z0-9]+-(?P<ft>[0-9]{6})-(?P<orig>[A-Z]{8})-(?P<pri>[A-Z]{2})-[0-9a-f]{8}"
)


@dataclass(frozen=True, slots=True)
class Answered:
    """The AFTN message an identifier of the gateway's names."""

    filing_time: str
    originator: str
    priority: PriorityIndicator


def _answered(identifier: str) -> Answered | None:
    """The AFTN message the gateway made an AMHS message of, from the local part of that
    message's IPM or MTS identifier; None when it is not one of the gateway's."""
    match = _LOCAL_ID.fullmatch(identifier.rpartition(";")[2])
    if match is None:
        return None
    try:
        priority = PriorityIndicator(match["pri"])
    except ValueError:
        return None
    return Answered(match["ft"], match["orig"], priority)


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
    except NotAnIPMError:
        return _receipt_to_aftn(content, settings)
    except ATSHeaderError as exc:
        raise ConversionError(
            f"5.6.0 unable to convert to AFTN due to ATS-Message-Header syntax error: {exc}"
        ) from None
    except (IPMContentError, UnsupportedBodyPartError) as exc:
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


def probe_answer(envelope: Envelope, recipient: str, settings: GatewaySettings) -> str | None:
    """Why a message this probe stands for could not be converted to AFTN for `recipient`
    (the detail of the non-delivery), or None when it could: an interpersonal message no
    longer than an AFTN text, from an originator and to a recipient that have AFTN
    addresses (Doc 9880 Part II: the gateway answers probes as it would the message)."""
    if envelope.content_type != ContentType.P22:
        return f"5.6.1 unable to convert to AFTN: content type {envelope.content_type}"
    length = envelope.content_length
    # The text and the IPM around it (a heading, the ATS message header: well under 4 KiB).
    if length is not None and length > settings.max_text_length + 4096:
        return f"5.3.4 unable to convert to AFTN due to message text length ({length} octets)"
    register = settings.register
    try:
        register.to_aftn(parse_oraddress(envelope.originator))
    except (AddressingError, AddressError) as exc:
        return f"5.5.4 unable to convert to AFTN due to unrecognized originator O/R address: {exc}"
    try:
        register.to_aftn(parse_oraddress(recipient))
    except (AddressingError, AddressError) as exc:
        return f"5.1.1 no AFTN address for {recipient}: {exc}"
    return None


def acknowledgement(
    original: AFTNMessage | Answered, settings: GatewaySettings, now: float
) -> AFTNMessage:
    """The acknowledgement of an SS message, `R <filing time> <originator>` of the message
    acknowledged, at priority SS to its originator (Annex 10 Volume II §4.4.1.2.3)."""
    return AFTNMessage(
        priority=PriorityIndicator.SS,
        addressees=(original.originator,),
        filing_time=filing_time(now),
        originator=settings.aftn_address,
        text=f"R {original.filing_time} {original.originator}",
    )


def _receipt_to_aftn(content: bytes, settings: GatewaySettings) -> AFTNMessage:
    """An IPN to an AFTN user: the receipt notification of an SS message the gateway
    converted becomes its AFTN acknowledgement (Doc 9880 Part II, the gateway's AMHS to AFTN
    direction); any other notification has no AFTN form."""
    try:
        ipn = decode_ipn(content)
    except (IPNError, ValueError) as exc:
        raise ConversionError(f"5.6.0 unable to convert to AFTN: the IPN: {exc}") from None
    if ipn.receipt is None:
        raise ConversionError("5.6.1 unable to convert to AFTN: a non-receipt notification")
    answered = _answered(ipn.subject_ipm.local)
    if answered is None or answered.priority is not PriorityIndicator.SS:
        raise ConversionError(
            "5.6.1 unable to convert RN to AFTN ACK service message: it answers no SS message "
            "of this gateway"
        )
    received = ipn.receipt.receipt_time.timestamp()
    return acknowledgement(answered, settings, received)


def report_to_aftn(
    report: ReportContent, settings: GatewaySettings, now: float
) -> AFTNMessage | None:
    """What an X.411 report to an AFTN user becomes on AFTN: for recipients of an AFTN
    message the gateway converted that no AMHS domain knows (unrecognised-OR-name), the
    `SVC ADS … UNKNOWN` service message to its originator; None for any other report, which
    AFTN has no form for."""
    answered = _answered(report.subject_id)
    if answered is None:
        return None
    unknown: list[str] = []
    for recipient in report.recipients:
        if recipient.reason is None or recipient.diagnostic != UNRECOGNISED_OR_NAME:
            continue
        try:
            unknown.append(settings.register.to_aftn(parse_oraddress(recipient.actual_recipient)))
        except (AddressingError, AddressError):
            continue
    if not unknown:
        return None
    lines = [
        f"SVC ADS {answered.filing_time} {answered.originator}",
        f"{answered.priority} {' '.join(unknown)}"[:69],
        f"UNKNOWN {' '.join(unknown)}"[:69],
    ]
    return AFTNMessage(
        priority=answered.priority,
        addressees=(answered.originator,),
        filing_time=filing_time(now),
        originator=settings.aftn_address,
        text="\n".join(lines),
    )
