"""One bad object never blocks an X.400 link: over one real association to a running Waypost,
a peer sends what independent MTAs really send (an RFC 822 subject in a PrintableString
content-identifier, "@" in a report's supplementary-information) and an envelope that cannot
be interpreted; each is accepted, and the next message on the same association delivered."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from p1_client import P1Client
from test_x400_association import ORIGINATOR
from test_x400_reports import DOMAIN, JONES, delivered, network, route, stop

from waypost import events
from waypost.asn1 import SET, BERError, Tag, constructed, decode
from waypost.message import (
    ContentType,
    Envelope,
    Message,
    ObjectKind,
    Priority,
    Recipient,
    ReportRequest,
    TraceElement,
)
from waypost.osi.stack import (
    AssociationSettings,
    Mode,
    Release,
    Released,
    Transfer,
    TransferConfirmed,
)
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_envelope import MESSAGE_APDU, REPORT_APDU, TRACE_INFORMATION
from waypost.x400.p1_names import OR_NAME
from waypost.x400.p1_objects import (
    UninterpretableError,
    decode_object,
    encode_stored,
    receive_object,
)
from waypost.x400.p1_report import (
    ReportContent,
    ReportedRecipient,
    decode_report_content,
    encode_report_content,
)
from waypost.x400.report_maker import RecipientFate, build_report

SUBJECT = b"Re: <budget> for Q3"  # what PP copies from an RFC 822 subject
CONTENT_ID = b"\x4a" + bytes([len(SUBJECT)]) + SUBJECT
SUPPLEMENTARY = b"relayed by gw@example.org"


def p22(n: int, **fields: object) -> Message:
    content = build_ipm(
        originator=ORIGINATOR, recipients=[JONES], subject=f"#{n}", text="Hi", ipm_id=f"ipm-{n}"
    )
    envelope = Envelope(
        mts_id=f"{DOMAIN['a']};liberal-{n}",
        originator=ORIGINATOR,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
        **fields,  # type: ignore[arg-type]
    )
    return Message(envelope=envelope, content=content)


def apdu_of(message: Message) -> bytes:
    return encode_stored(message.envelope, message.content, domain=DOMAIN["a"])


def bad_content_identifier() -> bytes:
    # The encoder writes the text as given: the octets break the PrintableString.
    apdu = apdu_of(p22(1, content_id=SUBJECT.decode()))
    assert apdu.count(CONTENT_ID) == 1
    return apdu


def report_with_at_sign() -> bytes:
    """A delivery report from C for the originator (at A), with "@" in the supplementary
    information (built with "?" in its place, the same length, then patched)."""
    fate = ReportedRecipient(
        actual_recipient="/C=GB/ADMD= /PRMD=C/S=Carol/",
        originally_specified_number=1,
        arrival=1_700_000_000.0,
        delivered_at=1_700_000_001.0,
        supplementary=SUPPLEMENTARY.decode().replace("@", "?"),
    )
    content = encode_report_content(
        ReportContent(subject_id=f"{DOMAIN['a']};liberal-0", recipients=(fate,))
    )
    patched = content.replace(SUPPLEMENTARY.replace(b"@", b"?"), SUPPLEMENTARY)
    assert patched != content
    envelope = Envelope(
        mts_id=f"{DOMAIN['c']};report-1",
        originator="",
        recipients=[
            Recipient(
                address=ORIGINATOR,
                originally_specified_number=1,
                report_request=ReportRequest.NONE,
                mta_report_request=ReportRequest.NONE,
            )
        ],
        content_type=ContentType.X400_REPORT,
        trace=[TraceElement(domain=DOMAIN["c"], arrival=1_700_000_002.0)],
        is_report=True,
        object_kind=ObjectKind.REPORT,
    )
    return encode_stored(envelope, patched)


def uninterpretable_envelope() -> bytes:
    """A message whose priority is 9 (X.411 allows 0..2): its originator still decodes."""
    apdu = apdu_of(p22(3, priority=Priority.URGENT))
    assert apdu.count(b"\x47\x01\x02") == 1
    return apdu.replace(b"\x47\x01\x02", b"\x47\x01\x09")


def without(apdu: bytes, tag: Tag) -> bytes:
    """The message APDU with the envelope field `tag` taken out."""
    message = decode(apdu)
    envelope, content = message.children()
    kept = [bytes(item.raw) for item in envelope if item.tag != tag]
    return constructed(MESSAGE_APDU, constructed(SET, *kept), bytes(content.raw))


def no_originator() -> bytes:
    return without(apdu_of(p22(5)), OR_NAME)


def send_all(port: int, mode: Mode, apdus: list[bytes]) -> None:
    """One association, as the peer A-MTA: every transfer must be confirmed."""
    client = P1Client(
        port,
        mode,
        AssociationSettings(checkpoint_size=1, window_size=2),
        name="A-MTA",
        password="pw",
        timeout=10.0,
    )
    try:
        client.open()
        for apdu in apdus:
            client.send(Transfer(apdu=apdu))
            client.until(TransferConfirmed)
        client.send(Release())
        client.until(Released)
    finally:
        client.close()


def emitted(
    caplog: pytest.LogCaptureFixture, event: events.EventDefinition
) -> list[dict[str, str]]:
    return [
        dict(r.waypost_fields)  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "waypost_event", None) is event
    ]


@pytest.mark.parametrize("mode", [Mode.NORMAL_1988, Mode.X410])
async def test_bad_objects_are_taken_and_the_next_message_is_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: Mode
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    # B is under test; A (the originator's MTA) receives what B relays and reports.
    routes = {"b": route("A", "a"), "a": route("B", "b")}
    net = await network(tmp_path, routes, mode="x410" if mode is Mode.X410 else "1988")
    try:
        b_port = int(net["b"].config.x400.listen[0].rpartition(":")[2])
        good = apdu_of(p22(4))
        apdus = [
            bad_content_identifier(),
            report_with_at_sign(),
            uninterpretable_envelope(),
            no_originator(),
            good,
        ]
        await asyncio.to_thread(send_all, b_port, mode, apdus)

        # At B: the message with the bad content-identifier, kept as received, and the next.
        at_b = await delivered(net["b"], 2)
        by_id = {decode_object(raw)[0].mts_id: raw for raw in at_b}
        kept = by_id[f"{DOMAIN['a']};liberal-1"]
        assert CONTENT_ID in kept  # relayed (here: delivered) with the octets it came with
        assert decode_object(kept)[0].content_id == SUBJECT.decode()
        assert f"{DOMAIN['a']};liberal-4" in by_id

        # At A: the report B relayed, its supplementary information as received, and B's
        # non-delivery report on the message it could not interpret.
        at_a = await delivered(net["a"], 2)
        reports = {decode_object(raw)[0].mts_id: raw for raw in at_a}
        relayed = reports.pop(f"{DOMAIN['c']};report-1")
        assert SUPPLEMENTARY in relayed
        ((_, raw_ndr),) = reports.items()
        envelope, content = decode_object(raw_ndr)
        assert envelope.object_kind is ObjectKind.REPORT
        ndr = decode_report_content(content)
        assert ndr.subject_id == f"{DOMAIN['a']};liberal-3"
        (fate,) = ndr.recipients
        assert fate.actual_recipient == JONES
        assert fate.describe() == "non-delivered: unable-to-transfer / invalid-arguments"

        assert emitted(caplog, events.X400_ASSOCIATION_ABORTED) == []
        # B names the field and the peer, once per object (A too, for the report B relayed).
        kept_at_b = [f for f in emitted(caplog, events.X400_FIELD_KEPT) if "A-MTA" in f["peer"]]
        assert [f["mts_id"] for f in kept_at_b] == [
            f"{DOMAIN['a']};liberal-1",
            f"{DOMAIN['c']};report-1",
        ]
        assert "envelope.content-identifier" in kept_at_b[0]["fields"]
        assert "supplementary-information" in kept_at_b[1]["fields"]
        refused, dropped = emitted(caplog, events.X400_OBJECT_UNINTERPRETABLE)
        assert refused["mts_id"] == f"{DOMAIN['a']};liberal-3" and "priority" in refused["reason"]
        assert ORIGINATOR in refused["outcome"]
        assert "originator" in dropped["reason"] and dropped["outcome"].startswith("dropped")
    finally:
        await stop(net)


# ----------------------------------------------------------------------------- sans-I/O


def test_a_string_breaking_its_type_is_kept_and_named() -> None:
    received = receive_object(bad_content_identifier(), domain=DOMAIN["b"])
    assert received.envelope.content_id == SUBJECT.decode()
    (fault,) = received.kept
    assert fault.path == "mts-apdu.envelope.content-identifier" and "'<'" in fault.reason
    # What is relayed carries the octets received.
    assert CONTENT_ID in encode_stored(received.envelope, received.content)


def test_broken_ber_is_not_taken_at_all() -> None:
    with pytest.raises(BERError) as caught:
        receive_object(bad_content_identifier()[:-3], domain=DOMAIN["b"])
    assert not isinstance(caught.value, UninterpretableError)


def test_an_uninterpretable_message_is_salvaged_for_its_report() -> None:
    apdu = without(apdu_of(p22(6)), TRACE_INFORMATION)
    with pytest.raises(UninterpretableError) as caught:
        receive_object(apdu, domain=DOMAIN["b"])
    salvage = caught.value.salvage
    assert caught.value.kind == "message" and "trace-information" in str(caught.value.error)
    assert salvage is not None
    assert salvage.envelope.mts_id == f"{DOMAIN['a']};liberal-6"
    assert salvage.envelope.originator == ORIGINATOR
    assert [r.address for r in salvage.envelope.recipients] == [JONES]
    assert salvage.content == p22(6).content


def test_without_an_originator_or_as_a_report_nothing_is_salvaged() -> None:
    with pytest.raises(UninterpretableError) as caught:
        receive_object(no_originator(), domain=DOMAIN["b"])
    assert caught.value.salvage is None
    report = decode(report_with_at_sign())
    envelope, content = report.children()
    kept = [bytes(item.raw) for item in envelope if item.tag != TRACE_INFORMATION]
    broken = constructed(REPORT_APDU, constructed(SET, *kept), bytes(content.raw))
    with pytest.raises(UninterpretableError) as caught:
        receive_object(broken, domain=DOMAIN["b"])
    assert caught.value.kind == "report" and caught.value.salvage is None


def test_a_name_breaking_its_type_is_noted_in_every_object_that_has_it() -> None:
    """Names are cached by their octets; one with a string kept as received is not, so
    that the second object with it is noted as well as the first."""
    sent = p22(7)
    odd = "/C=GB/ADMD= /PRMD=A/S=Smiqqth/"
    envelope = sent.envelope
    apdu = encode_stored(
        Envelope(
            mts_id=envelope.mts_id,
            originator=odd,
            recipients=envelope.recipients,
            content_type=envelope.content_type,
        ),
        sent.content,
        domain=DOMAIN["a"],
    ).replace(b"Smiqqth", b"Smi<>th")
    for _ in range(2):
        received = receive_object(apdu, domain=DOMAIN["b"])
        (fault,) = received.kept
        assert fault.path.startswith("mts-apdu.envelope.originator-name")
        # Mapped to text the RFC 2156 way: the characters outside PrintableString escaped.
        assert received.envelope.originator == "/C=GB/ADMD= /PRMD=A/S=Smi(060)(062)th/"


def test_a_salvaged_message_always_gives_a_report_that_encodes() -> None:
    """What the salvage reads is what the report on it carries: a value P1 cannot carry
    (a negative content type) is left out, not copied into a report that cannot be sent."""
    apdu = apdu_of(p22(8))
    assert apdu.count(b"\x46\x01\x16") == 1  # built-in content type 22
    with pytest.raises(UninterpretableError) as caught:
        receive_object(apdu.replace(b"\x46\x01\x16", b"\x46\x01\xb3"), domain=DOMAIN["b"])
    salvage = caught.value.salvage
    assert salvage is not None and salvage.envelope.content_type == ContentType.P2
    fate = RecipientFate(rcpt_index=0, delivered=False, detail="5.5.4 unreadable", when=2.0)
    report = build_report(
        subject=salvage.envelope,
        content=salvage.content,
        outcomes=[fate],
        received_at=1.0,
        domain=DOMAIN["b"],
        now=2.0,
    )
    assert decode_object(encode_stored(report.envelope, report.content))[0].mts_id
