"""A DSN about mail the gateway made from an X.400 message crosses back as an X.411 report
whose recipients keep the originally-specified numbers the X.400 originator gave them,
not their places in the DSN (waypost.mixer.notices.dsn_to_x400)."""

from __future__ import annotations

from test_mixer_convert import SIDE, SMITH

from waypost.handoff import ReportKind
from waypost.message import ContentType, Envelope, Recipient
from waypost.mixer.convert import ipm_to_mail
from waypost.mixer.notices import dsn_to_x400
from waypost.smtp.dsn import Action, RecipientReport, build_dsn
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_report import decode_report_content

GATEWAY = "/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/"
CAROL, NOBODY, DAVE = (
    f"{GATEWAY}DDA:RFC-822={name}(a)remote.example/" for name in ("carol", "nobody", "dave")
)


def converted_mail() -> tuple[Envelope, bytes]:
    """The mail the gateway makes of Smith's IPM to three mail recipients."""
    recipients = [CAROL, NOBODY, DAVE]
    envelope = Envelope(
        mts_id="/C=ZZ/ADMD= /PRMD=Waypost/;ipm-3",
        originator=SMITH,
        recipients=[
            Recipient(address=r, originally_specified_number=i + 1)
            for i, r in enumerate(recipients)
        ],
        content_type=ContentType.P22,
    )
    content = build_ipm(
        originator=SMITH, recipients=recipients, subject="s", text="t", ipm_id="ipm-3"
    )
    converted = ipm_to_mail(envelope, content, [0, 1, 2], SIDE)
    assert converted.message is not None and converted.kept == (0, 1, 2)
    return converted.message.envelope, converted.message.content


def test_a_failed_recipient_keeps_its_originally_specified_number() -> None:
    mail, content = converted_mail()
    nobody = mail.recipients[1]
    assert nobody.address == "nobody@remote.example"
    dsn = build_dsn(
        envelope=mail,
        content=content,
        kind=ReportKind.FAILURE,
        recipients=[
            RecipientReport(
                address=nobody.address,
                orcpt=nobody.orcpt,
                action=Action.FAILED,
                status="5.1.1",
                diagnostic="550 5.1.1 no such user",
            )
        ],
        reporting_mta="mx.test",
        now=SIDE.now,
    )
    dsn_envelope = Envelope(
        mts_id="dsn-1@mx.test", originator="", recipients=[Recipient(address=mail.originator)]
    )
    converted = dsn_to_x400(dsn_envelope, dsn, [0], SIDE)
    assert converted.message is not None
    report = decode_report_content(converted.message.content)
    assert report.subject_id == "/C=ZZ/ADMD= /PRMD=Waypost/;ipm-3"
    (reported,) = report.recipients
    assert reported.actual_recipient == NOBODY
    # The second recipient Smith named, though the first (and only) one the DSN names.
    assert reported.originally_specified_number == 2
