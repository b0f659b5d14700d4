"""One-line summaries of what crosses a P1 association, for the protocol trace (the x400
category at its maximum level): the stack's events and the objects transferred, decoded,
never a password."""

from __future__ import annotations

from waypost.asn1 import BERError
from waypost.message import Envelope
from waypost.osi.stack_events import (
    Aborted,
    Accepted,
    ConnectionClosed,
    Open,
    OpenRequest,
    RecoverRequest,
    Released,
    Transfer,
    TransferConfirmed,
    TransferReceived,
)
from waypost.x400.p1_bind import decode_bind


def bind_name(data: bytes) -> str:
    """The MTA name and whether a password came, from an MTABindArgument or -Result."""
    try:
        bind = decode_bind(data)
    except (BERError, ValueError) as exc:
        return f"an undecodable bind ({exc})"
    name = bind.name if bind.name is not None else "NULL (unauthenticated)"
    return f"MTA name {name}" + (", with a password" if bind.password is not None else "")


def describe_event(event: object) -> str:
    """What one stack event says (received or sent)."""
    match event:
        case OpenRequest():
            return (
                f"open: bind ({bind_name(event.bind_argument)}), "
                f"{event.dialogue_mode.name.lower().replace('_', '-')}, checkpoint size "
                f"{event.checkpoint_size}, window {event.window_size}"
            )
        case Open():
            return f"open: bind ({bind_name(event.bind_argument)})"
        case Transfer():
            return f"transfer: an MTS-APDU of {len(event.apdu)} octets"
        case RecoverRequest():
            return f"recover the transfer on connection {event.identifier}"
        case Accepted():
            return f"bind accepted ({bind_name(event.bind_result)})"
        case TransferReceived():
            return f"transfer: an MTS-APDU of {len(event.apdu)} octets"
        case TransferConfirmed():
            return "transfer confirmed"
        case Aborted():
            who = "by the peer" if event.by_peer else "by us"
            return f"aborted {who} in the {event.layer.value} layer: {event.reason}"
        case Released():
            return "released"
        case ConnectionClosed():
            return "connection closed"
    return type(event).__name__


def describe_object(envelope: Envelope, size: int) -> str:
    """An object taken or sent: its kind, MTS identifier, originator and recipients."""
    recipients = len(envelope.recipients)
    return (
        f"{envelope.object_kind.value} {envelope.mts_id} from {envelope.originator or '<>'} "
        f"to {recipients} recipient(s), content {envelope.content_type}, {size} octets"
    )
