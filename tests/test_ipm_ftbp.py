"""BER of the file-transfer body part (X.420 §7.4.12): its layout field by field, round
trips over generated files, FTBPs as other agents build them read, compressed ones refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from ipm_strategies import files

from waypost.asn1 import (
    EXTERNAL,
    GENERALIZED_TIME,
    GRAPHIC_STRING,
    OCTET_STRING,
    constructed,
    context,
    decode,
    encode_int,
    encode_octets,
    encode_oid,
    encode_string,
    encode_time,
    sequence,
)
from waypost.x400.ipm_bodies import BodyPart, FileTransfer
from waypost.x400.ipm_bodies_ber import (
    UnsupportedBodyPartError,
    decode_body_part,
    encode_body_part,
)
from waypost.x400.ipm_ftbp import (
    FTAM_1_UNSTRUCTURED_TEXT,
    FTAM_3_UNSTRUCTURED_BINARY,
    ID_EP_FILE_TRANSFER,
    ID_ET_FILE_TRANSFER,
    UNSTRUCTURED_BINARY_SYNTAX,
)

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_layout() -> None:
    part = FileTransfer(
        data=b"%PDF", filename="report.pdf", content_type="application/pdf", created=WHEN
    )
    extended = decode(encode_body_part(part))
    assert extended.tag == context(15, True)
    parameters, data = extended.children()
    assert parameters.child(0).as_oid() == ID_EP_FILE_TRANSFER
    assert data.tag == EXTERNAL and data.child(0).as_oid() == ID_ET_FILE_TRANSFER
    contents, environment, attributes = parameters.child(1).child(0).children()
    # contents-type [1] { document-type [0] { FTAM-3 unstructured binary } }
    assert contents.tag == context(1, True)
    assert contents.child(0).child(0).as_oid() == FTAM_3_UNSTRUCTURED_BINARY
    # environment [2] { user-visible-string [3] { "application/pdf" } }
    assert environment.child(0).child(0).as_string(GRAPHIC_STRING) == "application/pdf"
    pathname, created, size = attributes.children()
    assert pathname.tag == context(0, True)  # incomplete-pathname
    assert pathname.child(0).as_string(GRAPHIC_STRING) == "report.pdf"
    assert created.tag == context(4, True)
    assert created.child(0).as_time(GENERALIZED_TIME) == WHEN
    assert size.tag == context(13, True) and size.child(0).as_int() == 4
    (external,) = data.child(1).child(0)  # FileTransferData ::= SEQUENCE OF EXTERNAL
    assert external.child(0).as_oid() == UNSTRUCTURED_BINARY_SYNTAX
    assert bytes(external.child(1).raw) == b"\x81\x04%PDF"  # octet-aligned [1]
    assert decode_body_part(encode_body_part(part)) == part


def test_text_files_are_ftam_1_and_need_no_environment() -> None:
    part = FileTransfer(data=b"a\r\n", filename="a.txt", content_type="text/plain")
    parameters = decode(encode_body_part(part)).child(0).child(1).child(0)
    assert [p.tag.number for p in parameters] == [1, 4]
    assert parameters.child(0).child(0).child(0).as_oid() == FTAM_1_UNSTRUCTURED_TEXT
    assert decode_body_part(encode_body_part(part)) == part


@settings(max_examples=150, deadline=None)
@given(files())
def test_generated_files_round_trip(part: BodyPart) -> None:
    assert decode_body_part(encode_body_part(part)) == part


def _ftbp(parameters: list[bytes], *externals: bytes) -> bytes:
    return constructed(
        context(15, True),
        constructed(
            context(0, True),
            encode_oid(ID_EP_FILE_TRANSFER),
            constructed(context(0, True), sequence(*parameters)),
        ),
        constructed(
            EXTERNAL,
            encode_oid(ID_ET_FILE_TRANSFER),
            constructed(context(0, True), sequence(*externals)),
        ),
    )


def test_an_ftbp_as_another_agent_builds_it() -> None:
    # A complete pathname with directories, a user-visible-string that is no MIME type,
    # a Latin-1 name, no-value-available creation time, data in two EXTERNALs, one as
    # single-ASN1-type OCTET STRING and one octet-aligned.
    wire = _ftbp(
        [
            constructed(
                context(2, True),
                constructed(context(3, True), encode_string(GRAPHIC_STRING, "Made by FileSender")),
            ),
            constructed(
                context(4, True),
                constructed(
                    context(23, True),
                    encode_string(GRAPHIC_STRING, "C:"),
                    encode_string(GRAPHIC_STRING, "Résumé.doc"),
                ),
                constructed(context(4, True), encode_octets(b"", context(0))),
                constructed(context(5, True), encode_time(WHEN, context(1), GENERALIZED_TIME)),
                constructed(context(13, True), encode_int(6, context(1))),
            ),
        ],
        constructed(
            EXTERNAL,
            encode_oid(UNSTRUCTURED_BINARY_SYNTAX),
            constructed(context(0, True), encode_octets(b"abc", OCTET_STRING)),
        ),
        constructed(
            EXTERNAL, encode_oid(UNSTRUCTURED_BINARY_SYNTAX), encode_octets(b"def", context(1))
        ),
    )
    assert decode_body_part(wire) == FileTransfer(
        data=b"abcdef", filename="Résumé.doc", modified=WHEN
    )


def test_an_ftbp_without_parameters_is_a_binary_file() -> None:
    wire = constructed(
        context(15, True),
        constructed(
            EXTERNAL,
            encode_oid(ID_ET_FILE_TRANSFER),
            constructed(
                context(0, True),
                sequence(
                    constructed(EXTERNAL, encode_oid("1.2.3"), encode_octets(b"x", context(1)))
                ),
            ),
        ),
    )
    assert decode_body_part(wire) == FileTransfer(data=b"x")


def test_a_compressed_ftbp_is_unsupported() -> None:
    wire = _ftbp([constructed(context(3, True), encode_oid("1.2.3"))])
    with pytest.raises(UnsupportedBodyPartError, match="compressed"):
        decode_body_part(wire)


def test_mime_parameters_round_trip() -> None:
    part = FileTransfer(
        data=b"<p>", filename="a.html", content_type="text/html", parameters=(("charset", "utf-8"),)
    )
    assert decode_body_part(encode_body_part(part)) == part
