"""tshark's X.420 dissector reads the IPMs waypost.x400.ipm_codec encodes, carried in P1
between two Waypost services: every heading field and each body part (an FTBP among them)
as sent, nothing malformed (the transfer and its capture are those of test_x400_tshark.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_x400_association import JONES, ORIGINATOR
from test_x400_tshark import capture_transfer, descendants, pdml, shows, tshark

from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.x400.ipm_bodies import (
    BilaterallyDefined,
    FileTransfer,
    GeneralText,
    IA5Text,
    MessagePart,
)
from waypost.x400.ipm_bodies_ber import ID_EP_GENERAL_TEXT, ID_ET_GENERAL_TEXT
from waypost.x400.ipm_codec import InterpersonalMessage, encode_ipm
from waypost.x400.ipm_ftbp import (
    FTAM_3_UNSTRUCTURED_BINARY,
    ID_EP_FILE_TRANSFER,
    ID_ET_FILE_TRANSFER,
    UNSTRUCTURED_BINARY_SYNTAX,
)
from waypost.x400.ipm_heading import HeadingExtension, IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.ipm_heading_ber import ID_HEX_INCOMPLETE_COPY, ID_HEX_LANGUAGES

pytestmark = pytest.mark.interop

PRIVATE = "1.3.6.1.4.1.99999.1"
BROWN = "/C=GB/ADMD= /PRMD=B/S=Brown/"
FORWARDED = IPMHeading(this_ipm=IPMIdentifier(user=BROWN, local="fwd-1"), subject="Inner")
HEADING = IPMHeading(
    this_ipm=IPMIdentifier(user=ORIGINATOR, local="ipm-full-1"),
    originator=ORDescriptor(
        address=ORIGINATOR, free_form_name="Jo Smith", telephone_number="+44 1"
    ),
    authorizing_users=(ORDescriptor(address=BROWN),),
    primary_recipients=(
        ORDescriptor(
            address=JONES, notification_requests=frozenset({"rn", "nrn"}), reply_requested=True
        ),
    ),
    copy_recipients=(ORDescriptor(address=BROWN, free_form_name="Brown"),),
    blind_copy_recipients=(ORDescriptor(address=ORIGINATOR),),
    replied_to_ipm=IPMIdentifier(user=JONES, local="earlier-1"),
    obsoleted_ipms=(IPMIdentifier(user=None, local="old-1"),),
    related_ipms=(IPMIdentifier(user=None, local="rel-1"),),
    subject="Every field",
    expiry_time=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    reply_time=datetime(2029, 6, 7, 8, 9, 10, tzinfo=UTC),
    reply_recipients=(ORDescriptor(address=BROWN),),
    importance="high",
    sensitivity="private",
    auto_forwarded=True,
    languages=("en", "de"),
    incomplete_copy=True,
    other_extensions=(HeadingExtension(type=PRIVATE, value=b"\x02\x01\x07"),),
)
BODY = (
    IA5Text(text="First part\n"),
    GeneralText(charset="iso-8859-1", text="Zweiter Teil: Grüße\n"),
    BilaterallyDefined(data=b"\x00\x01\x02"),
    MessagePart(heading=FORWARDED, body=(IA5Text(text="forwarded text"),)),
    FileTransfer(
        data=b"%PDF-1.4 ...",
        filename="report.pdf",
        content_type="application/pdf",
        created=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        modified=datetime(2024, 5, 7, 7, 8, 9, tzinfo=UTC),
    ),
)


def full_ipm_message() -> Message:
    content = encode_ipm(InterpersonalMessage(heading=HEADING, body=BODY))
    envelope = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=A/;ipm-full",
        originator=ORIGINATOR,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    return Message(envelope=envelope, content=content)


async def test_tshark_dissects_every_heading_field_and_body_part(tmp_path: Path) -> None:
    cap = await capture_transfer(tmp_path, "1988", [full_ipm_message()])
    assert tshark(cap, "-Y", "_ws.malformed") == ""
    root = pdml(cap)
    (packet,) = (p for p in root.iter("packet") if any(descendants(p, "p1.message_element")))
    assert shows(packet, "p22.subject") == ["Every field", "Inner"]
    assert shows(packet, "p22.user_relative_identifier") == [
        "ipm-full-1",
        "earlier-1",
        "old-1",
        "rel-1",
        "fwd-1",
    ]
    assert shows(packet, "p22.free_form_name") == ["Jo Smith", "Brown"]
    assert shows(packet, "p22.telephone_number") == ["+44 1"]
    assert len(list(descendants(packet, "p22.authorizing_users"))) == 1
    assert shows(packet, "p22.reply_requested") == ["1"]
    assert shows(packet, "p22.NotificationRequests.rn") == ["1"]
    assert shows(packet, "p22.NotificationRequests.nrn") == ["1"]
    assert shows(packet, "p22.expiry_time") == ["30-01-02 03:04:05 (UTC)"]
    assert shows(packet, "p22.reply_time") == ["29-06-07 08:09:10 (UTC)"]
    assert shows(packet, "p22.importance") == ["2"]
    assert shows(packet, "p22.sensitivity") == ["2"]
    assert shows(packet, "p22.auto_forwarded") == ["1"]
    assert sorted(shows(packet, "p22.Language")) == ["de", "en"]
    assert shows(packet, "p22.type") == [ID_HEX_LANGUAGES, ID_HEX_INCOMPLETE_COPY, PRIVATE]
    surnames = shows(packet, "p1.surname")
    for name in ("Smith", "Jones", "Brown"):
        assert name in surnames
    # The body: five parts, the forwarded IPM's own body inside the message part.
    assert shows(packet, "p22.body") == ["5", "1"]
    assert shows(packet, "p22.basic") == ["0", "14", "9", "0"]  # ia5, bilateral, message, ia5
    assert shows(packet, "ber.direct_reference") == [
        ID_EP_GENERAL_TEXT,
        ID_ET_GENERAL_TEXT,
        ID_EP_FILE_TRANSFER,
        ID_ET_FILE_TRANSFER,
        UNSTRUCTURED_BINARY_SYNTAX,
    ]
    assert shows(packet, "p22.CharacterSetRegistration") == ["6", "100"]  # ASCII, ISO 8859-1
    assert shows(packet, "p22.bilaterally_defined") == ["00:01:02"]
    # The FTBP (X.420 §7.4.12): its FTAM document type, MIME type, name, times, size, data.
    assert shows(packet, "p22.document_type_name") == [FTAM_3_UNSTRUCTURED_BINARY]
    assert shows(packet, "p22.user_visible_string_item") == ["application/pdf"]
    assert shows(packet, "ftam.Pathname_item") == ["report.pdf"]
    assert shows(packet, "ftam.actual_values5") == [
        "May  6, 2024 07:08:09.000000000 UTC",
        "May  7, 2024 07:08:09.000000000 UTC",
    ]
    assert shows(packet, "ftam.actual_values7") == ["12"]
    assert shows(packet, "ber.octet_aligned") == [":".join(f"{b:02x}" for b in b"%PDF-1.4 ...")]
    first, forwarded = shows(packet, "p22.ia5text.data")
    assert first.startswith("First part") and forwarded == "forwarded text"
