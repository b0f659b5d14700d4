"""IPNs ⇄ RFC 8098 MDNs: golden MDNs for a receipt, a discard and an auto-forward, a mail
client's MDN read as a receipt, refusals by name, and generated round trips IPN → MDN → IPN."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage, Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_mixer_heading import GATEWAY, mail_to_or, or_to_mail
from waypost.mixer.mdn import MDNError, disposition_of, ipn_to_mdn, mdn_to_ipn
from waypost.mixer.message_ids import printable_escape
from waypost.x400.ipm_heading import IPMIdentifier, ORDescriptor
from waypost.x400.ipn import (
    ACKNOWLEDGMENT_MODES,
    DISCARD_REASONS,
    IPN,
    NON_RECEIPT_REASONS,
    NonReceiptFields,
    ReceiptFields,
)

WHEN = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
SUBJECT = IPMIdentifier(user=None, local=printable_escape("m1@a.example"))
JONES = ORDescriptor(address="/O=b/S=jones/")


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def notification(message: Message) -> Message:
    part = next(
        p for p in subparts(message) if p.get_content_type() == "message/disposition-notification"
    )
    (fields,) = subparts(part)
    return fields


def subparts(message: Message) -> list[Message]:
    """The parts of a multipart (or the messages of a message/* part), typed."""
    payload = message.get_payload()
    assert isinstance(payload, list)
    return [p for p in payload if isinstance(p, Message)]


def mdn(ipn: IPN, **kw: object) -> EmailMessage:
    return parse(
        ipn_to_mdn(
            ipn,
            or_to_mail=or_to_mail,
            gateway_domain=GATEWAY,
            to="smith@a.example",
            now=0,
            **kw,  # type: ignore[arg-type]
        )
    )


def test_receipt_becomes_a_displayed_mdn() -> None:
    rn = IPN(
        subject_ipm=SUBJECT,
        ipn_originator=JONES,
        receipt=ReceiptFields(receipt_time=WHEN, supplementary_receipt_info="read at desk"),
    )
    message = mdn(rn)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "disposition-notification"
    assert message["To"].addresses[0].addr_spec == "smith@a.example"
    fields = notification(message)
    # RFC 8098 §3.2.2, §3.2.4-§3.2.6.
    assert fields["MDN-Gateway"] == f"dns; {GATEWAY}"
    assert fields["Final-Recipient"] == "rfc822; jones@b.example"
    assert fields["Original-Message-ID"] == "<m1@a.example>"
    assert fields["Disposition"] == "manual-action/MDN-sent-manually; displayed"
    assert fields["X400-Receipt-Time"] == "Sat, 01 Mar 2025 12:30:00 +0000"
    assert fields["X400-Supplementary-Info"] == "read at desk"
    assert fields["Original-Recipient"] is None


def test_discard_becomes_a_deleted_mdn_with_the_returned_message() -> None:
    nrn = IPN(
        subject_ipm=SUBJECT,
        ipn_originator=ORDescriptor(address="/O=b/S=kay/"),
        ipm_intended_recipient=JONES,
        non_receipt=NonReceiptFields(reason="ipm-discarded", discard_reason="ipm-expired"),
    )
    message = mdn(nrn, returned_message=b"From: smith@a.example\nSubject: lunch\n\nx\n")
    fields = notification(message)
    assert fields["Disposition"] == "automatic-action/MDN-sent-automatically; deleted"
    assert fields["X400-Discard-Reason"] == "ipm-expired"
    assert fields["Original-Recipient"] == "rfc822; jones@b.example"
    assert fields["Final-Recipient"] == "rfc822; kay@b.example"
    returned = subparts(message)[2]
    assert returned.get_content_type() == "message/rfc822"


def test_auto_forward_becomes_a_dispatched_mdn() -> None:
    nrn = IPN(
        subject_ipm=SUBJECT,
        ipn_originator=JONES,
        non_receipt=NonReceiptFields(reason="ipm-auto-forwarded", auto_forward_comment="on leave"),
    )
    assert disposition_of(nrn) == "automatic-action/MDN-sent-automatically; dispatched"
    assert notification(mdn(nrn))["X400-Auto-Forward-Comment"] == "on leave"


def test_another_notification_type_has_no_mdn() -> None:
    other = IPN(subject_ipm=SUBJECT, ipn_originator=JONES, other_notification=b"\x31\x00")
    with pytest.raises(MDNError, match="another notification type"):
        mdn(other)


# An MDN as a mail client sends it (RFC 8098 §9's layout), no X.400 fields.
CLIENT_MDN = b"""\
Date: Sat, 01 Mar 2025 13:05:00 +0100
From: Jones <jones@b.example>
To: smith@a.example
Subject: Read: lunch
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
\tboundary="RAA14128.773615765/b.example"

--RAA14128.773615765/b.example
Content-Type: text/plain; charset=us-ascii

The message sent on 2025-03-01 to jones@b.example with subject "lunch" has been
displayed. This is no guarantee that the message has been read or understood.

--RAA14128.773615765/b.example
Content-Type: message/disposition-notification

Reporting-UA: b.example; Example Mail 1.0
Original-Recipient: rfc822;jones@b.example
Final-Recipient: rfc822;jones@b.example
Original-Message-ID: <m1@a.example>
Disposition: manual-action/MDN-sent-manually; displayed

--RAA14128.773615765/b.example--
""".replace(b"\n", b"\r\n")


def test_a_mail_clients_mdn_becomes_a_receipt() -> None:
    ipn = mdn_to_ipn(CLIENT_MDN, mail_to_or=mail_to_or, gateway_domain=GATEWAY)
    assert ipn.subject_ipm == SUBJECT
    assert ipn.ipn_originator == JONES
    assert ipn.ipm_intended_recipient == JONES
    # No X400-Receipt-Time: the MDN's Date is when it was displayed.
    assert ipn.receipt == ReceiptFields(receipt_time=datetime(2025, 3, 1, 12, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ((b"displayed\r\n", b"displayed/error\r\n"), "reports an error"),
        ((b"displayed\r\n", b"denied\r\n"), "'denied' is not an RFC 8098 disposition type"),
        ((b"manual-action/MDN-sent-manually", b"by-hand"), "no RFC 8098 action mode"),
        ((b"Final-Recipient: rfc822;jones@b.example\r\n", b""), "Final-Recipient: required"),
        (
            (b"Original-Message-ID: <m1@a.example>", b"Original-Message-ID: m1"),
            "Original-Message-ID",
        ),
        ((b"report-type=disposition-notification", b"report-type=delivery-status"), "report-type"),
        (
            (b"Disposition:", b"X400-Supplementary-Info: a@b\r\nDisposition:"),
            "suppl-receipt-info: '@'",
        ),
    ],
)
def test_mdns_x420_cannot_carry_are_refused_by_name(
    change: tuple[bytes, bytes], match: str
) -> None:
    with pytest.raises(MDNError, match=match):
        mdn_to_ipn(CLIENT_MDN.replace(*change), mail_to_or=mail_to_or, gateway_domain=GATEWAY)


# --- round trips ------------------------------------------------------------------------

_WORD = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_DESCRIPTOR = st.builds(lambda s, o: ORDescriptor(address=f"/O={o}/S={s}/"), _WORD, _WORD)
_TEXT = st.from_regex(
    r"[A-Za-z0-9'()+,\-./:=?][A-Za-z0-9 '()+,\-./:=?]{0,38}[A-Za-z0-9.]", fullmatch=True
)
_WHEN = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2049, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)


@st.composite
def ipns(draw: st.DrawFn) -> IPN:
    """IPNs of the fields an MDN carries: the intended recipient only when it differs."""
    originator = draw(_DESCRIPTOR)
    intended = draw(st.none() | _DESCRIPTOR.filter(lambda d: d != originator))
    if draw(st.booleans()):
        kind: dict[str, object] = {
            "receipt": ReceiptFields(
                receipt_time=draw(_WHEN),
                acknowledgment_mode=draw(st.sampled_from(ACKNOWLEDGMENT_MODES)),
                supplementary_receipt_info=draw(st.none() | _TEXT),
            )
        }
    else:
        kind = {
            "non_receipt": NonReceiptFields(
                reason=draw(st.sampled_from(NON_RECEIPT_REASONS)),
                discard_reason=draw(st.none() | st.sampled_from(DISCARD_REASONS)),
                auto_forward_comment=draw(st.none() | _TEXT),
            )
        }
    return IPN(
        subject_ipm=IPMIdentifier(
            user=None, local=printable_escape(f"{draw(_WORD)}@{draw(_WORD)}.example")
        ),
        ipn_originator=originator,
        ipm_intended_recipient=intended,
        conversion_eits=draw(
            st.none() | st.sampled_from([("ia5-text",), ("ia5-text", "g3-facsimile")])
        ),
        **kind,  # type: ignore[arg-type]
    )


@given(ipns())
def test_ipn_round_trips_through_its_mdn(ipn: IPN) -> None:
    data = ipn_to_mdn(ipn, or_to_mail=or_to_mail, gateway_domain=GATEWAY, to="smith@a.example")
    back = mdn_to_ipn(data, mail_to_or=mail_to_or, gateway_domain=GATEWAY)
    assert back == ipn
