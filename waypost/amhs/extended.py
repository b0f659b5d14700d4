"""The Extended ATS Message Service's heading fields: an extended ATS message carries its
priority, filing time and optional heading information not in a text header but in IPM
heading fields of X.420 (2003) — the precedence of each recipient under the AMHS
precedence policy, the authorization time, and the originator's reference (ICAO Doc 9880
Part II, Extended ATS Message Service; EUR Doc 047 uses the same mapping).

The object identifiers are X.420's IPMSObjectIdentifiers: id-hex = {id-ipms 5}, id-rex =
{id-ipms 20}. The precedence values are those AMHS gives the priority indicators; the
policy identifier is ICAO's (1.3.27.8.0.0)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from waypost.amhs.priority import PriorityIndicator
from waypost.asn1 import (
    BMP_STRING,
    GENERALIZED_TIME,
    INTEGER,
    SET,
    UNIVERSAL_STRING,
    BERError,
    constructed,
    decode,
    encode_int,
    encode_oid,
    encode_string,
    encode_time,
)
from waypost.x400.ipm_heading import HeadingExtension, IPMHeading

ID_HEX_AUTHORIZATION_TIME = "2.6.1.5.5"  # AuthorizationTime ::= GeneralizedTime
ID_HEX_ORIGINATORS_REFERENCE = "2.6.1.5.11"  # UniversalOrBMPString{…}
ID_HEX_PRECEDENCE_POLICY_ID = "2.6.1.5.12"  # OBJECT IDENTIFIER
ID_REX_PRECEDENCE = "2.6.1.20.1"  # a recipient extension: Precedence ::= INTEGER (0..127)
AMHS_PRECEDENCE_POLICY = "1.3.27.8.0.0"

PRECEDENCE = {
    PriorityIndicator.SS: 107,
    PriorityIndicator.DD: 71,
    PriorityIndicator.FF: 57,
    PriorityIndicator.GG: 28,
    PriorityIndicator.KK: 14,
}
_BY_PRECEDENCE = {value: indicator for indicator, value in PRECEDENCE.items()}


def filed_at(filing_time: str, now: datetime) -> datetime:
    """The moment DDHHMM stands for: the latest that is not in the future (this month, or
    the last month that has that day)."""
    day, hour, minute = int(filing_time[:2]), int(filing_time[2:4]), int(filing_time[4:])
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(3):
        try:
            moment = start.replace(day=day, hour=hour, minute=minute)
        except ValueError:  # the 31st of a shorter month
            moment = None
        if moment is not None and moment <= now + timedelta(minutes=5):
            return moment
        start = (start - timedelta(days=1)).replace(day=1)
    raise ValueError(f"filing time {filing_time!r} names no recent day")


def heading_fields(
    priority: PriorityIndicator, filing_time: str, ohi: str, now: datetime
) -> tuple[tuple[HeadingExtension, ...], HeadingExtension]:
    """The heading extensions of an extended ATS message, and the recipient extension
    every recipient carries (its precedence)."""
    extensions = [
        HeadingExtension(
            type=ID_HEX_AUTHORIZATION_TIME,
            value=encode_time(filed_at(filing_time, now), GENERALIZED_TIME),
        ),
        HeadingExtension(
            type=ID_HEX_PRECEDENCE_POLICY_ID, value=encode_oid(AMHS_PRECEDENCE_POLICY)
        ),
    ]
    if ohi:
        # UniversalOrBMPString: SET { character-encoding CHOICE { two-octets BMPString,
        # four-octets UniversalString }, iso-639-language-code OPTIONAL }.
        value = constructed(SET, encode_string(BMP_STRING, ohi))
        extensions.append(HeadingExtension(type=ID_HEX_ORIGINATORS_REFERENCE, value=value))
    precedence = HeadingExtension(type=ID_REX_PRECEDENCE, value=encode_int(PRECEDENCE[priority]))
    return tuple(extensions), precedence


def read_heading_fields(heading: IPMHeading) -> tuple[PriorityIndicator, str, str] | None:
    """The priority indicator, filing time (DDHHMM) and optional heading information an
    extended ATS message's heading carries; None when it carries no precedence and
    authorization time (not an extended ATS message)."""
    found: dict[str, HeadingExtension] = {e.type: e for e in heading.other_extensions}
    precedences = [
        e
        for r in heading.primary_recipients + heading.copy_recipients
        for e in r.recipient_extensions
        if e.type == ID_REX_PRECEDENCE
    ]
    time = found.get(ID_HEX_AUTHORIZATION_TIME)
    if not precedences or time is None:
        return None
    try:
        indicator = _BY_PRECEDENCE.get(decode(precedences[0].value).expect(INTEGER).as_int())
        when = decode(time.value).expect(GENERALIZED_TIME).as_time()
    except (BERError, ValueError):
        return None
    if indicator is None:
        return None
    ohi = ""
    reference = found.get(ID_HEX_ORIGINATORS_REFERENCE)
    if reference is not None:
        try:
            choice = decode(reference.value).expect(SET)
            text = next(c for c in choice if c.tag in (BMP_STRING, UNIVERSAL_STRING))
            ohi = text.as_string(text.tag, check=False)
        except (BERError, ValueError, StopIteration):
            ohi = ""
    return indicator, when.astimezone(UTC).strftime("%d%H%M"), ohi
