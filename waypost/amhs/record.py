"""One ATS message as the ATS record keeps it (waypost.tracking.ats_record): what the
gateway and the X.400 agents hand to the recorder when they transfer one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from waypost.amhs.aftn import AFTNMessage
from waypost.amhs.ats import read_ats
from waypost.message import ContentType, Envelope
from waypost.x400.ipm_codec import decode_ipm


@dataclass(frozen=True, slots=True, kw_only=True)
class ATSRecord:
    """One ATS message transferred. `direction` is `in` or `out`; `channel` where it came
    from or went (`aftn:STATION`, `aftn:HOST:PORT`, `x400:PEER`); addresses are AFTN
    addresses where the message had them, else O/R address texts."""

    at: float
    direction: str
    channel: str
    priority: str
    filing_time: str
    originator: str
    addressees: tuple[str, ...]
    text: str
    ohi: str = ""
    message_id: int | None = None
    mts_id: str | None = None
    transmission_id: str | None = None

    def row(self) -> tuple[object, ...]:
        return (
            self.at,
            self.direction,
            self.channel,
            self.message_id,
            self.mts_id,
            self.transmission_id,
            self.priority,
            self.filing_time,
            self.originator,
            " ".join(self.addressees),
            self.ohi,
            self.text,
        )

    @classmethod
    def from_row(cls, row: Sequence[object]) -> ATSRecord:
        at, direction, channel, message_id, mts_id, tid, pri, ft, orig, addr, ohi, text = row
        return cls(
            at=float(at),  # type: ignore[arg-type]
            direction=str(direction),
            channel=str(channel),
            message_id=message_id if isinstance(message_id, int) else None,
            mts_id=None if mts_id is None else str(mts_id),
            transmission_id=None if tid is None else str(tid),
            priority=str(pri),
            filing_time=str(ft),
            originator=str(orig),
            addressees=tuple(str(addr).split()),
            ohi=str(ohi),
            text=str(text),
        )


# Told of each ATS message transferred (the service's ATS recorder, when it keeps one);
# returns once it is recorded.
Recorder = Callable[[ATSRecord], Awaitable[None]]


def record_of_aftn(
    aftn: AFTNMessage,
    *,
    at: float,
    direction: str,
    channel: str,
    message_id: int | None = None,
    mts_id: str | None = None,
) -> ATSRecord:
    """The record of an AFTN message the gateway received or sent."""
    return ATSRecord(
        at=at,
        direction=direction,
        channel=channel,
        priority=aftn.priority.value,
        filing_time=aftn.filing_time,
        originator=aftn.originator,
        addressees=aftn.addressees,
        text=aftn.text,
        ohi=aftn.ohi,
        message_id=message_id,
        mts_id=mts_id,
        transmission_id=aftn.transmission_id or None,
    )


def record_of_ipm(
    envelope: Envelope,
    content: bytes,
    recipients: Sequence[str],
    *,
    at: float,
    direction: str,
    channel: str,
    message_id: int | None = None,
) -> ATSRecord | None:
    """The record of an AMHS message transferred over P1, when it is an ATS message (an
    IPM whose text begins with an ATS message header); None for any other."""
    if envelope.content_type != ContentType.P22 or not content:
        return None
    try:
        read = read_ats(decode_ipm(content), envelope.priority)
    except ValueError:  # not an IPM, or a header that breaks its rules: not an ATS message
        return None
    header = read.header
    if header is None:
        return None
    return ATSRecord(
        at=at,
        direction=direction,
        channel=channel,
        priority=header.priority.value,
        filing_time=header.filing_time,
        originator=envelope.originator,
        addressees=tuple(recipients),
        text=read.text,
        ohi=header.ohi,
        message_id=message_id,
        mts_id=envelope.mts_id,
    )
