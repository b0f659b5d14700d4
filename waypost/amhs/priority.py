"""ATS message priorities: the AFTN priority indicators (Annex 10 Volume II §4.4.3.1.1) and
the X.411 priority an AMHS message of each travels with, which orders the queue (ICAO Doc
9880 Part II, the ATS message priority: SS urgent, DD and FF normal, GG and KK
non-urgent). The indicator itself travels in the ATS message header (waypost.amhs.ats)."""

from __future__ import annotations

import enum

from waypost.message import Priority


class PriorityIndicator(enum.StrEnum):
    """Annex 10 Volume II §4.4.1.1: the priority indicator of an AFTN message, in the order
    of transmission (SS first)."""

    SS = "SS"  # distress
    DD = "DD"  # urgency, and those the sender asks to go before FF
    FF = "FF"  # flight safety
    GG = "GG"  # meteorological, flight regularity, aeronautical information
    KK = "KK"  # administrative

    @property
    def envelope_priority(self) -> Priority:
        """The X.411 priority an AMHS message of this indicator travels with."""
        return _ENVELOPE[self]


# Doc 9880 Part II: ATS message priority → X.411 priority.
_ENVELOPE = {
    PriorityIndicator.SS: Priority.URGENT,
    PriorityIndicator.DD: Priority.NORMAL,
    PriorityIndicator.FF: Priority.NORMAL,
    PriorityIndicator.GG: Priority.NON_URGENT,
    PriorityIndicator.KK: Priority.NON_URGENT,
}


def indicator_of(priority: Priority) -> PriorityIndicator:
    """The priority indicator of an AMHS message that carries no ATS message header (from
    a user of the plain IPM service): SS for urgent, FF for normal, GG for non-urgent — the
    first indicator of each X.411 priority that is not kept for a special use (DD, KK)."""
    if priority is Priority.URGENT:
        return PriorityIndicator.SS
    if priority is Priority.NON_URGENT:
        return PriorityIndicator.GG
    return PriorityIndicator.FF


def parse_indicator(text: str) -> PriorityIndicator:
    """A priority indicator as an operator or a peer writes it; ValueError if it is none."""
    try:
        return PriorityIndicator(text.strip().upper())
    except ValueError:
        choices = ", ".join(p.value for p in PriorityIndicator)
        raise ValueError(f"priority indicator {text!r} is not one of {choices}") from None
