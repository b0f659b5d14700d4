"""The codec's caches of O/R names, domain identifiers and parsed addresses: results
equal an uncached decode, failures are never kept (errors still name their path), and
every cache stays within its bound."""

from __future__ import annotations

import pytest

from waypost.address import AddressError, parse_oraddress
from waypost.address import oraddress as oraddress_module
from waypost.asn1 import BERError, decode
from waypost.x400 import p1_names
from waypost.x400.p1_names import (
    NAME_CACHE_SIZE,
    decode_gdi,
    decode_or_components,
    decode_orname,
    encode_gdi,
    encode_orname,
)


def name(i: int) -> bytes:
    return encode_orname(parse_oraddress(f"/C=GB/ADMD= /PRMD=P{i}/S=Person{i}/"))


def test_a_cached_name_is_what_decoding_gives() -> None:
    wire = name(1)
    first = decode_orname(decode(wire))
    again = decode_orname(decode(wire))
    element = decode(wire)
    assert first == again == decode_or_components(element, element.children())


def test_a_failure_is_never_kept() -> None:
    # A country name that is not two letters: refused, at the path of each use.
    bad = bytearray(name(2))
    bad[bad.index(b"GB")] = ord("?")
    for path in ("originator-name", "recipient-name"):
        with pytest.raises(BERError) as caught:
            decode_orname(decode(bytes(bad), name=path))
        assert path in str(caught.value)
    assert bytes(bad) not in p1_names._ORNAMES


def test_name_caches_stay_bounded() -> None:
    for i in range(NAME_CACHE_SIZE + 500):
        decode_orname(decode(name(i)))
        decode_gdi(decode(encode_gdi(f"/C=GB/ADMD=A{i}/")))
    assert 0 < len(p1_names._ORNAMES) <= NAME_CACHE_SIZE
    assert 0 < len(p1_names._GDIS) <= NAME_CACHE_SIZE


def test_long_names_bypass_the_cache() -> None:
    ddas = "".join(f"DDA:K{i}={c * 120}/" for i, c in enumerate("wxyz"))
    long_name = encode_orname(parse_oraddress(f"/C=GB/ADMD= /PRMD=P/S={'X' * 40}/{ddas}"))
    assert len(long_name) > 512
    before = dict(p1_names._ORNAMES)
    assert decode_orname(decode(long_name)).text.startswith("/C=GB/")
    assert p1_names._ORNAMES.keys() == before.keys()


def test_parsed_addresses_cache_is_bounded_and_keeps_no_failure() -> None:
    for i in range(oraddress_module.PARSE_CACHE_SIZE + 100):
        parse_oraddress(f"/C=GB/ADMD= /PRMD=Q{i}/S=S{i}/")
    info = oraddress_module._parse_cached.cache_info()
    assert info.currsize <= oraddress_module.PARSE_CACHE_SIZE
    for _ in range(2):
        with pytest.raises(AddressError):
            parse_oraddress("/C=GB/ADMD= /NOSUCH=1/")
