"""A peer in X.410 (1984) mode gets P2, never P22: two Waypost services over P1, A
sending to B as a 1984 MTA. What X.420 (1984) can carry crosses as content type 2; what it
cannot comes back to the originator as a non-delivery report (5.6.1, unable-to-transfer /
content-type-not-supported), and B never sees it."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest
from test_x400_association import ORIGINATOR, message
from test_x400_reports import JONES, delivered, network, report_of, route, stop

from waypost.message import ContentType, Message
from waypost.x400.ipm_bodies import FileTransfer, IA5Text
from waypost.x400.ipm_codec import InterpersonalMessage, decode_ipm, encode_ipm
from waypost.x400.ipm_downgrade import downgrade_to_p2
from waypost.x400.ipm_heading import IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.p1_objects import decode_object

HEADING = IPMHeading(
    this_ipm=IPMIdentifier(user=ORIGINATOR, local="p2-1"),
    originator=ORDescriptor(address=ORIGINATOR),
    primary_recipients=(
        ORDescriptor(address=JONES, notification_requests=frozenset({"rn", "an-supported"})),
    ),
    subject="For a 1984 MTA",
    languages=("en",),
)


def with_content(ipm: InterpersonalMessage) -> Message:
    sent = message()
    return msgspec.structs.replace(sent, content=encode_ipm(ipm))


async def test_p22_crosses_to_a_1984_peer_as_p2(tmp_path: Path) -> None:
    net = await network(tmp_path, {"a": route("B", "b"), "b": route("A", "a")}, mode="x410")
    ipm = InterpersonalMessage(heading=HEADING, body=(IA5Text(text="Hello, 1984"),))
    sent = with_content(ipm)
    try:
        await net["a"].submit(sent)
        (apdu,) = await delivered(net["b"])
        envelope, content = decode_object(apdu)
        assert envelope.content_type == ContentType.P2
        assert content == downgrade_to_p2(sent.content)
        got = decode_ipm(content)
        assert got.body == ipm.body and got.heading.subject == "For a 1984 MTA"
        assert got.heading.languages == ()  # dropped: P2 has no heading extensions
        assert got.heading.primary_recipients[0].notification_requests == {"rn"}
    finally:
        await stop(net)


async def test_what_p2_cannot_carry_is_reported_not_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    net = await network(tmp_path, {"a": route("B", "b"), "b": route("A", "a")}, mode="x410")
    attachment = FileTransfer(data=b"%PDF-1.4", filename="r.pdf", content_type="application/pdf")
    ipm = InterpersonalMessage(heading=HEADING, body=(IA5Text(text="see attached"), attachment))
    try:
        await net["a"].submit(with_content(ipm))
        (apdu,) = await delivered(net["a"])  # the report, to the originator at A
        (fate,) = report_of(apdu).recipients
        assert fate.actual_recipient == JONES and not fate.delivered
        assert fate.describe() == "non-delivered: unable-to-transfer / content-type-not-supported"
        assert fate.supplementary is not None and fate.supplementary.startswith("5.6.1")
        assert "extended body part 2.6.1.4.12" in fate.supplementary  # the FTBP
        assert not list(Path(net["b"].config.local.x400_store).glob("*/new/*"))
        texts = [r.getMessage() for r in caplog.records]
        assert any("has P22 content with no P2 form" in t for t in texts)
    finally:
        await stop(net)


async def test_a_1988_peer_gets_the_p22_content_as_it_is(tmp_path: Path) -> None:
    net = await network(tmp_path, {"a": route("B", "b"), "b": route("A", "a")})
    attachment = FileTransfer(data=b"%PDF-1.4", filename="r.pdf", content_type="application/pdf")
    sent = with_content(InterpersonalMessage(heading=HEADING, body=(attachment,)))
    try:
        await net["a"].submit(sent)
        (apdu,) = await delivered(net["b"])
        envelope, content = decode_object(apdu)
        assert envelope.content_type == ContentType.P22 and content == sent.content
    finally:
        await stop(net)
