"""The MTS-APDU of a stored object: the bytes sent to an adjacent MTA or written to a store."""

from __future__ import annotations

from waypost.message import Envelope
from waypost.x400.p1_envelope import P1Message, TransferEnvelope, encode_mts_apdu


def encode_stored(envelope: Envelope, content: bytes) -> bytes:
    """The MTS-APDU for an envelope and content as the MTA database keeps them."""
    return encode_mts_apdu(P1Message(envelope=TransferEnvelope(envelope=envelope), content=content))
