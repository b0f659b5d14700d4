"""BER fast paths: the few shapes on every transfer's path, written and read without elements.

Each function answers only for the form senders write — definite lengths in their
shortest form (X.690 8.1.3.2 a, 10.1), one-octet tags, an INTEGER of 0..127 — and
declines anything else with None, which the caller then hands to the full codec.
Where a fast path answers, it gives what the full codec gives (tests/test_asn1_fast.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

TAG_INTEGER: Final = 0x02
TAG_OCTET_STRING: Final = 0x04  # primitive
TAG_EXTERNAL: Final = 0x28  # [UNIVERSAL 8] constructed
TAG_SEQUENCE: Final = 0x30
TAG_EXPLICIT_0: Final = 0xA0  # [0] constructed
#: Four length octets cover every size the decoder's limits let through.
MAX_LENGTH_OCTETS: Final = 4

_SHORT_LENGTHS: Final = [bytes((n,)) for n in range(0x80)]


def encode_length(length: int) -> bytes:
    """Definite length octets in the shortest form (X.690 8.1.3), as `encode_length` writes."""
    if length < 0x80:
        return _SHORT_LENGTHS[length]
    size = (length.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def read_length(data: bytes | memoryview, p: int) -> tuple[int, int]:
    """(length, offset after it) of the definite length at `p` in its shortest form, or
    (-1, p) for anything else (indefinite, longer than needed, past the end)."""
    if p >= len(data):
        return -1, p
    first = data[p]
    if first < 0x80:
        return first, p + 1
    size = first & 0x7F
    if not 1 <= size <= MAX_LENGTH_OCTETS or p + 1 + size > len(data):
        return -1, p
    length = int.from_bytes(data[p + 1 : p + 1 + size], "big")
    if length < 0x80 or length.bit_length() <= 8 * (size - 1):
        return -1, p  # not the shortest form
    return length, p + 1 + size


def read_octet_string(data: bytes, p: int = 0) -> int | None:
    """Where the contents start of the primitive OCTET STRING at `p` that runs to the end
    of `data`; None for any other element."""
    if p >= len(data) or data[p] != TAG_OCTET_STRING:
        return None  # a constructed OCTET STRING, above all, is the full decoder's
    length, start = read_length(data, p + 1)
    if length < 0 or start + length != len(data):
        return None
    return start


def encode_ident_single(outer: Sequence[int], ident: int, value: bytes) -> bytes | None:
    """`outer[0] { outer[1] { … { INTEGER ident, [0] { value } } } }` (each of `outer` a
    one-octet constructed tag; `value` whole BER elements), the headers computed from the
    lengths and joined once; None unless `ident` is 0..127 (one contents octet)."""
    if not 0 <= ident < 0x80:
        return None
    single = encode_length(len(value))
    length = 3 + 1 + len(single) + len(value)  # INTEGER, [0] header, the value
    headers: list[bytes] = []
    for tag in reversed(outer):
        length_octets = encode_length(length)
        headers.append(bytes((tag,)) + length_octets)
        length += 1 + len(length_octets)
    headers.reverse()
    return b"".join((*headers, bytes((TAG_INTEGER, 1, ident, TAG_EXPLICIT_0)), single, value))


def read_ident_single(data: bytes, outer: Sequence[int]) -> tuple[int, int] | None:
    """(ident, offset of the contents of [0]) of the shape `encode_ident_single` writes,
    every element running to the end of `data`; None for any other form."""
    p = 0
    for tag in outer:
        if p >= len(data) or data[p] != tag:
            return None
        length, p = read_length(data, p + 1)
        if length < 0 or p + length != len(data):
            return None
    if data[p : p + 2] != b"\x02\x01" or p + 3 >= len(data) or data[p + 2] >= 0x80:
        return None
    ident = data[p + 2]
    if data[p + 3] != TAG_EXPLICIT_0:
        return None
    length, p = read_length(data, p + 4)
    if length < 0 or p + length != len(data):
        return None
    return ident, p
