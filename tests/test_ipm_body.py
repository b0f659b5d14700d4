"""The text of an IPM's body parts (X.420 §7.3) as `queue show --body` and `mailbox show`
print it: ia5-text, teletex and general-text read as text, other parts named."""

from __future__ import annotations

import pytest

from waypost.asn1 import (
    EXTERNAL,
    GENERAL_STRING,
    IA5_STRING,
    SET,
    TELETEX_STRING,
    BERError,
    constructed,
    context,
    encode_octets,
    encode_oid,
    encode_string,
    sequence,
)
from waypost.x400.ipm import IPM, build_ipm
from waypost.x400.ipm_body import GENERAL_TEXT_OID, body_parts


def ipm_with(*parts: bytes) -> bytes:
    return constructed(IPM, constructed(SET), sequence(*parts))


def test_text_parts_are_read_and_others_named() -> None:
    ia5 = constructed(context(0, True), constructed(SET), encode_string(IA5_STRING, "Hello\r\n"))
    teletex = constructed(
        context(5, True),
        constructed(SET),
        sequence(encode_string(TELETEX_STRING, "line 1\r\n"), encode_string(TELETEX_STRING, "2")),
    )
    general = constructed(
        context(15, True),
        constructed(
            EXTERNAL,
            encode_oid(GENERAL_TEXT_OID),
            constructed(context(0, True), encode_string(GENERAL_STRING, "Grüße")),
        ),
    )
    other_external = constructed(
        context(15, True),
        constructed(
            EXTERNAL,
            encode_oid("1.2.3.4"),
            constructed(context(0, True), encode_octets(b"\x00\x01")),
        ),
    )
    fax = constructed(context(3, True), constructed(SET), sequence(encode_octets(b"x" * 40)))
    parts = body_parts(ipm_with(ia5, teletex, general, other_external, fax))
    assert [(p.kind, p.text) for p in parts] == [
        ("ia5-text", "Hello\r\n"),
        ("teletex", "line 1\r\n2"),
        ("general-text", "Grüße"),
        ("extended 1.2.3.4", None),
        ("g3-facsimile", None),
    ]
    assert parts[4].size > 40


def test_the_ipm_submit_builds_reads_back() -> None:
    content = build_ipm(
        originator="/C=GB/ADMD= /PRMD=W/S=A/",
        recipients=["/C=GB/ADMD= /PRMD=W/S=B/"],
        subject="s",
        text="one\ntwo\n",
        ipm_id="x",
    )
    (part,) = body_parts(content)
    assert (part.kind, part.text) == ("ia5-text", "one\r\ntwo\r\n")


def test_not_an_ipm_is_a_ber_error() -> None:
    with pytest.raises(BERError):
        body_parts(encode_octets(b"no"))
