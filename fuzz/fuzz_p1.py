"""Fuzz the P1 decoder: an MTS-APDU (message, report or probe) as the MTA would store it.
Only BERError (a ValueError) may come out; what decodes must encode again."""

from __future__ import annotations

from common import instrumented, run

with instrumented():
    from waypost.asn1 import BERError
    from waypost.message import ObjectKind
    from waypost.x400.p1_objects import decode_object, encode_stored


def test_one_input(data: bytes) -> None:
    try:
        envelope, content = decode_object(data)
    except BERError:
        return
    if envelope.object_kind is ObjectKind.MESSAGE:
        encode_stored(envelope, content)  # what was accepted can be relayed


if __name__ == "__main__":
    run(test_one_input)
