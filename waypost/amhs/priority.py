"""ATS message priorities: the AFTN priority indicators and what each maps to in X.400 — the
envelope's priority, which orders the queue, and the IPM's importance (ICAO Doc 9880 Part II
§3.1.2.2.3, Table 3-1; Annex 10 Volume II §4.4.1.1)."""

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

    @property
    def importance(self) -> str:
        """The X.420 importance of its IPM heading (low, normal, high)."""
        return _IMPORTANCE[self]


# Doc 9880 Part II Table 3-1: ATS message priority ⇄ X.411 priority and X.420 importance.
_ENVELOPE = {
    PriorityIndicator.SS: Priority.URGENT,
    PriorityIndicator.DD: Priority.NORMAL,
    PriorityIndicator.FF: Priority.NORMAL,
    PriorityIndicator.GG: Priority.NON_URGENT,
    PriorityIndicator.KK: Priority.NON_URGENT,
}
_IMPORTANCE = {
    PriorityIndicator.SS: "high",
    PriorityIndicator.DD: "high",
    PriorityIndicator.FF: "normal",
    PriorityIndicator.GG: "normal",
    PriorityIndicator.KK: "low",
}


def indicator_of(priority: Priority, importance: str = "normal") -> PriorityIndicator:
    """The priority indicator of an AMHS message that carries none in an ATS message
    header (a message from a user of the IPM service): read back from its envelope
    priority and importance by the same table, FF when nothing says otherwise."""
    if priority is Priority.URGENT:
        return PriorityIndicator.SS
    if priority is Priority.NON_URGENT:
        return PriorityIndicator.KK if importance == "low" else PriorityIndicator.GG
    return PriorityIndicator.DD if importance == "high" else PriorityIndicator.FF


def parse_indicator(text: str) -> PriorityIndicator:
    """A priority indicator as an operator or a peer writes it; ValueError if it is none."""
    try:
        return PriorityIndicator(text.strip().upper())
    except ValueError:
        choices = ", ".join(p.value for p in PriorityIndicator)
        raise ValueError(f"priority indicator {text!r} is not one of {choices}") from None
