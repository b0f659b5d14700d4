"""The MIXER gateway inside one running Waypost: Internet mail to an O/R address reaches the
X.400 store as a P22 IPM, an X.400 message to a mail address reaches a Maildir as MIME, and
what cannot cross fails with a report — through the real intake, queue and store."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import free_port, running_service

from waypost import events
from waypost.message import ContentType, Envelope, Message, Notify, Recipient, new_mts_id
from waypost.service import Service
from waypost.x400.ipm import build_ipm
from waypost.x400.ipm_bodies import FileTransfer, IA5Text
from waypost.x400.ipm_codec import decode_ipm
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu
from waypost.x400.p1_objects import decode_object
from waypost.x400.p1_report import decode_report_content

GATEWAY_OR = "/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/"
SMITH = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/S=Smith/G=Jo/"
ORIGINATOR = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/S=Jones/G=Al/"


async def start(
    tmp_path: Path,
    extra: str = "",
    *,
    x400_mailboxes: list[str] | None = None,
    domains: list[str] | None = None,
    mime_mailboxes: dict[str, str] | None = None,
    on_arrival: bool = True,
) -> Service:
    mime = (
        "mime_mailboxes = {"
        + ", ".join(f'"{k}" = "{v}"' for k, v in (mime_mailboxes or {}).items())
        + "}\n"
    )
    local_domains = str(domains or ["localhost"]).replace("'", '"')
    mailboxes = f"x400_mailboxes = {x400_mailboxes!r}\n".replace("'", '"') if x400_mailboxes else ""
    return await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f"[queue]\npoll_interval = 0.1\n"
        f"[local]\ndomains = {local_domains}\n"
        f'oraddresses = ["/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/"]\n'
        f"{mailboxes}{mime}"
        f'[x400]\nglobal_domain = "/C=ZZ/ADMD= /PRMD=Waypost/"\n'
        f'[mixer]\nenabled = true\ndomain = "gw.example"\noraddress = "{GATEWAY_OR}"\n'
        f"convert_on_arrival = {str(on_arrival).lower()}\n"
        f'[[mixer.mapping]]\noraddress = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/"\n'
        f'domain = "sales.example"\n'
        # The Sales users are X.400 users: their mail domain routes to the gateway.
        f'[[route]]\nmatch = "sales.example"\nnext_hop = "gateway:mixer"\n{extra}',
        name="w",
        listen=False,
    )


async def files(root: Path, pattern: str, n: int = 1) -> list[Path]:
    for _ in range(600):  # 30 s: a loaded machine is slow, never wrong
        found = sorted(root.glob(pattern))
        if len(found) >= n:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} files {pattern} under {root}")


async def queue_emptied(path: str) -> bool:
    """Whether every recipient has left the queue within 30 s."""
    for _ in range(600):
        with sqlite3.connect(path) as conn:
            if conn.execute("SELECT count(*) FROM recipients").fetchone()[0] == 0:
                return True
        await asyncio.sleep(0.05)
    return False


MAIL = (
    b"From: Bob Brown <bob@localhost>\r\n"
    b"To: Jo Smith <Jo.Smith@sales.example>\r\n"
    b"Subject: quarterly figures\r\n"
    b"Message-ID: <q3.figures@localhost>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"The figures are attached.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="q3.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQKJcfsj6IK\r\n"
    b"--b1--\r\n"
)


@pytest.mark.parametrize("on_arrival", [True, False], ids=["on-arrival", "queued"])
async def test_mail_to_an_or_address_arrives_as_a_p22_ipm(tmp_path: Path, on_arrival: bool) -> None:
    svc = await start(tmp_path, on_arrival=on_arrival)
    envelope = Envelope(
        mts_id=new_mts_id("mx.test"),
        originator="bob@localhost",
        recipients=[Recipient(address="Jo.Smith@sales.example", notify=[Notify.SUCCESS])],
    )
    try:
        await svc.submit(Message(envelope=envelope, content=MAIL))
        (file,) = await files(Path(svc.config.local.x400_store), "*/new/*.p1")
        apdu = decode_mts_apdu(file.read_bytes())
        assert isinstance(apdu, P1Message)
        stored = apdu.envelope.envelope
        assert stored.content_type == ContentType.P22
        (recipient,) = stored.recipients
        assert recipient.address == SMITH
        # The originator is carried in an RFC-822 DDA under the gateway's O/R address.
        assert stored.originator.startswith(GATEWAY_OR.rstrip("/"))
        assert "bob@localhost" in stored.originator.replace("(a)", "@")
        ipm = decode_ipm(apdu.content)
        assert ipm.heading.subject == "quarterly figures"
        assert [d.address for d in ipm.heading.primary_recipients] == [SMITH]
        text, attachment = ipm.body
        assert isinstance(text, IA5Text) and "figures are attached" in text.text
        assert isinstance(attachment, FileTransfer)
        assert attachment.filename == "q3.pdf"
        assert attachment.data == b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n"
    finally:
        await svc.stop()


@pytest.mark.parametrize("on_arrival", [True, False], ids=["on-arrival", "queued"])
async def test_an_x400_message_to_a_mail_address_arrives_as_mime(
    tmp_path: Path, on_arrival: bool
) -> None:
    svc = await start(tmp_path, on_arrival=on_arrival)
    bob = f"{GATEWAY_OR}DDA:RFC-822=bob(a)localhost/"
    try:
        content = build_ipm(
            originator=ORIGINATOR,
            recipients=[bob],
            subject="from the X.400 side",
            text="Hello Bob,\nsee you.\n",
            ipm_id="ipm-1",
        )
        envelope = Envelope(
            mts_id="/C=ZZ/ADMD= /PRMD=Waypost/;local-1",
            originator=ORIGINATOR,
            recipients=[Recipient(address=bob, originally_specified_number=1)],
            content_type=ContentType.P22,
        )
        await svc.submit(Message(envelope=envelope, content=content))
        (file,) = await files(Path(svc.config.local.maildir), "*/new/*")
        mail = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        assert mail["Subject"] == "from the X.400 side"
        assert mail["From"].addresses[0].addr_spec == "Al.Jones@sales.example"
        assert mail["X400-MTS-Identifier"] == "[/C=ZZ/ADMD= /PRMD=Waypost/;local-1]"
        assert mail["X400-Received"].startswith("by /C=ZZ/ADMD= /PRMD=Waypost/")
        assert mail.get_content().replace("\r\n", "\n") == "Hello Bob,\nsee you.\n"
    finally:
        await svc.stop()


async def test_a_message_that_cannot_be_read_fails_with_a_report(tmp_path: Path) -> None:
    svc = await start(tmp_path)
    bob = f"{GATEWAY_OR}DDA:RFC-822=bob(a)localhost/"
    try:
        envelope = Envelope(
            mts_id="/C=ZZ/ADMD= /PRMD=Waypost/;local-2",
            originator=ORIGINATOR,
            recipients=[Recipient(address=bob, originally_specified_number=1)],
            content_type=ContentType.P22,
        )
        await svc.submit(Message(envelope=envelope, content=b"\xa0\x03\x01\x02"))
        # The originator is a local X.400 mailbox: the non-delivery report lands there.
        (file,) = await files(Path(svc.config.local.x400_store), "*/new/*.p1")
        assert b"local-2" in file.read_bytes()
        # The report's file is in place before its delivery is settled: the queue empties
        # a moment later.
        assert await queue_emptied(svc.store.path)
    finally:
        await svc.stop()


async def test_a_failed_mail_recipient_comes_back_as_an_x400_report(tmp_path: Path) -> None:
    # remote.example refuses everyone: the DSN for the converted mail goes to the mapped
    # originator, Al.Jones@sales.example, which routes back to the gateway and becomes an
    # X.411 non-delivery report for the X.400 originator.
    svc = await start(
        tmp_path, '[[route]]\nmatch = "remote.example"\nnext_hop = "error:5.1.1 no such user"\n'
    )
    bob = f"{GATEWAY_OR}DDA:RFC-822=bob(a)remote.example/"
    try:
        content = build_ipm(
            originator=ORIGINATOR, recipients=[bob], subject="s", text="t", ipm_id="ipm-3"
        )
        mts_id = "/C=ZZ/ADMD= /PRMD=Waypost/;local-3"
        envelope = Envelope(
            mts_id=mts_id,
            originator=ORIGINATOR,
            recipients=[Recipient(address=bob, originally_specified_number=1)],
            content_type=ContentType.P22,
        )
        await svc.submit(Message(envelope=envelope, content=content))
        (file,) = await files(Path(svc.config.local.x400_store), "*/new/*.p1")
        stored, report_bytes = decode_object(file.read_bytes())
        assert stored.object_kind.value == "report"
        assert stored.recipients[0].address == ORIGINATOR
        report = decode_report_content(report_bytes)
        assert report.subject_id == mts_id
        (reported,) = report.recipients
        assert reported.actual_recipient == bob
        assert not reported.delivered and reported.reason is not None
        assert "no such user" in (reported.supplementary or "")
    finally:
        await svc.stop()


async def test_an_unknown_x400_recipient_comes_back_as_a_dsn(tmp_path: Path) -> None:
    # Only Smith has an X.400 mailbox: mail to Nobody is non-delivered by X.400, and the
    # X.411 report, addressed to bob's O/R form under the gateway, comes back as a DSN.
    svc = await start(tmp_path, x400_mailboxes=[SMITH])
    envelope = Envelope(
        mts_id=new_mts_id("mx.test"),
        originator="bob@localhost",
        recipients=[Recipient(address="Ann.Nobody@sales.example")],
    )
    try:
        await svc.submit(Message(envelope=envelope, content=b"Subject: anyone?\r\n\r\nhello\r\n"))
        (file,) = await files(Path(svc.config.local.maildir), "*/new/*")
        dsn = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        assert dsn.get_content_type() == "multipart/report"
        assert dsn.get_param("report-type") == "delivery-status"
        status = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
        text = status.as_string()
        assert "Action: failed" in text and "Status: 5.1.1" in text
        assert "Ann.Nobody@sales.example" in text
    finally:
        await svc.stop()


async def test_a_local_mailbox_reads_x400_mail_as_mime(tmp_path: Path) -> None:
    # One X.400 user reads mail with an IMAP client: `[local] mime_mailboxes` puts their
    # messages, converted to MIME, in a Maildir; Smith beside them keeps the X.400 store.
    reader = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/S=Reader/G=Ann/"
    svc = await start(
        tmp_path, mime_mailboxes={"/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/S=Reader/": "ann"}
    )
    try:
        for ident, recipient in (("i4", reader), ("i5", SMITH)):
            content = build_ipm(
                originator=ORIGINATOR,
                recipients=[recipient],
                subject="for IMAP",
                text="hi",
                ipm_id=ident,
            )
            envelope = Envelope(
                mts_id=f"/C=ZZ/ADMD= /PRMD=Waypost/;{ident}",
                originator=ORIGINATOR,
                recipients=[Recipient(address=recipient, originally_specified_number=1)],
                content_type=ContentType.P22,
            )
            await svc.submit(Message(envelope=envelope, content=content))
        (file,) = await files(Path(svc.config.local.maildir), "*/new/*")
        assert file.parent.parent.name == "ann"
        mail = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        assert mail["Subject"] == "for IMAP"
        assert mail["X400-MTS-Identifier"] == "[/C=ZZ/ADMD= /PRMD=Waypost/;i4]"
        assert mail["From"].addresses[0].addr_spec == "Al.Jones@sales.example"
        (p1,) = await files(Path(svc.config.local.x400_store), "*/new/*.p1")
        assert b"i5" in p1.read_bytes()
    finally:
        await svc.stop()


def _events(
    caplog: pytest.LogCaptureFixture, event: events.EventDefinition
) -> list[dict[str, object]]:
    return [
        dict(r.waypost_fields) for r in caplog.records if getattr(r, "waypost_event", None) is event
    ]


def _messages_ever_stored(svc: Service) -> int:
    with sqlite3.connect(svc.store.path) as conn:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return 0 if row is None else int(row[0])


@pytest.mark.parametrize("on_arrival", [True, False], ids=["on-arrival", "queued"])
async def test_mail_whose_every_recipient_crosses_is_stored_once_converted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, on_arrival: bool
) -> None:
    # On arrival, the queue id the submitter is given is the converted message's, and no
    # copy of the mail as it came is ever stored; from the queue, there are two.
    caplog.set_level(logging.INFO, logger="waypost")
    svc = await start(tmp_path, on_arrival=on_arrival)
    mts_id = new_mts_id("mx.test")
    envelope = Envelope(
        mts_id=mts_id,
        originator="bob@localhost",
        recipients=[Recipient(address="Jo.Smith@sales.example")],
    )
    try:
        queue_id = await svc.submit(Message(envelope=envelope, content=MAIL))
        (file,) = await files(Path(svc.config.local.x400_store), "*/new/*.p1")
        apdu = decode_mts_apdu(file.read_bytes())
        assert isinstance(apdu, P1Message)
        converted_mts_id = apdu.envelope.envelope.mts_id
        on_arrival_events = _events(caplog, events.GATEWAY_CONVERTED_ON_ARRIVAL)
        queued_events = _events(caplog, events.GATEWAY_CONVERTED)
        if on_arrival:
            assert _messages_ever_stored(svc) == 1
            assert on_arrival_events == [
                {
                    "conversion": "Internet mail → X.400",
                    "mts_id": mts_id,
                    "recipients": 1,
                    "new_message_id": queue_id,
                    "new_mts_id": converted_mts_id,
                }
            ]
            assert queued_events == []
        else:
            assert _messages_ever_stored(svc) == 2
            assert on_arrival_events == []
            assert [e["new_message_id"] for e in queued_events] == [queue_id + 1]
        assert svc.manager.counters["converted"] == 1
    finally:
        await svc.stop()


async def test_mail_for_both_worlds_is_stored_as_it_came_and_converted_from_the_queue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A local mailbox beside an O/R address: the mail is stored once for both, and the
    # gateway converts it from the queue for the X.400 recipient alone.
    caplog.set_level(logging.INFO, logger="waypost")
    svc = await start(tmp_path)
    envelope = Envelope(
        mts_id=new_mts_id("mx.test"),
        originator="bob@localhost",
        recipients=[
            Recipient(address="Jo.Smith@sales.example"),
            Recipient(address="carol@localhost"),
        ],
    )
    try:
        await svc.submit(Message(envelope=envelope, content=MAIL))
        await files(Path(svc.config.local.x400_store), "*/new/*.p1")
        await files(Path(svc.config.local.maildir), "*/new/*")
        assert _messages_ever_stored(svc) == 2
        assert _events(caplog, events.GATEWAY_CONVERTED_ON_ARRIVAL) == []
        assert [e["recipients"] for e in _events(caplog, events.GATEWAY_CONVERTED)] == [1]
    finally:
        await svc.stop()


async def test_a_conversion_on_arrival_that_breaks_leaves_the_mail_to_the_queue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault in the gateway costs the shortcut, not the message: it is stored as it came
    # (with event 1003) and the queue converts it.
    caplog.set_level(logging.INFO, logger="waypost")
    svc = await start(tmp_path)
    assert svc.gateway is not None

    async def broken(new: object) -> None:
        raise RuntimeError("fault injected")

    monkeypatch.setattr(svc.gateway, "convert_on_arrival", broken)
    envelope = Envelope(
        mts_id=new_mts_id("mx.test"),
        originator="bob@localhost",
        recipients=[Recipient(address="Jo.Smith@sales.example")],
    )
    try:
        await svc.submit(Message(envelope=envelope, content=MAIL))
        await files(Path(svc.config.local.x400_store), "*/new/*.p1")
        (fault,) = _events(caplog, events.UNEXPECTED_ERROR)
        assert "fault injected" in str(fault["error"])
        assert [e["recipients"] for e in _events(caplog, events.GATEWAY_CONVERTED)] == [1]
        assert _messages_ever_stored(svc) == 2
    finally:
        await svc.stop()
