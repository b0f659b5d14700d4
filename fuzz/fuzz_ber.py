"""Fuzz the BER decoder: decode/decode_all/split_first/TLVReader under tight limits, and
every typed accessor on every element. Only BERError (a ValueError) may come out."""

from __future__ import annotations

import contextlib

from common import instrumented, run

with instrumented():
    from waypost import asn1 as ber

LIMITS = ber.Limits(max_length=1 << 16, max_depth=32, max_elements=5000, max_total=1 << 16)
ACCESSORS = (
    "as_int",
    "as_bool",
    "is_null",
    "as_octets",
    "as_oid",
    "as_string",
    "as_bits",
    "as_bit_set",
    "as_time",
)


def walk(root: ber.Element) -> None:
    todo = [root]
    while todo:
        element = todo.pop()
        _ = (element.path, element.raw, element.end, element.indefinite, repr(element))
        for name in ACCESSORS:
            with contextlib.suppress(ber.BERError):
                getattr(element, name)()
        if element.tag.constructed:
            with contextlib.suppress(ber.BERError):
                todo.extend(element.children())


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(ber.BERError):
        walk(ber.decode(data, limits=LIMITS, allow_trailing=bool(data[:1] == b"\x30")))
    try:
        for element in ber.decode_all(data, limits=LIMITS):
            walk(element)
    except ber.BERError:
        pass
    with contextlib.suppress(ber.BERError):
        ber.split_first(data, limits=LIMITS)
    reader = ber.TLVReader(limits=LIMITS)
    step = (data[0] % 64 + 1) if data else 1
    with contextlib.suppress(ber.BERError):
        for at in range(0, len(data), step):
            reader.feed(data[at : at + step])
            while reader.next_element() is not None:
                pass


if __name__ == "__main__":
    run(test_one_input)
