"""`waypost track` across two real Waypost MTAs: mail sent over SMTP to Waypost A, converted
by its gateway, relayed over P1 to Waypost B and stored there, is followed from A to B by
the identifiers in the records; a recipient B does not have comes back as a report, which
A's journal links to the message."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port
from serve_process import WAIT, ServeProcess

GATEWAY_A = "/C=ZZ/ADMD= /PRMD=A/O=Gateway/"
SMITH = "/C=ZZ/ADMD= /PRMD=B/S=Smith/G=Jo/"


def a_config(smtp_port: int, a_x400: int, b_x400: int) -> str:
    return (
        f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\n'
        "[queue]\npoll_interval = 0.05\n"
        '[local]\ndomains = ["a.example"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{a_x400}"]\nmta_name = "A-MTA"\n'
        'global_domain = "/C=ZZ/ADMD= /PRMD=A/"\n'
        '[[x400.peer]]\nname = "B-MTA"\n'
        f'address = "127.0.0.1:{b_x400}"\nour_password = "pa"\npeer_password = "pb"\n'
        f'[mixer]\nenabled = true\ndomain = "gw.a.example"\noraddress = "{GATEWAY_A}"\n'
        '[[mixer.mapping]]\noraddress = "/C=ZZ/ADMD= /PRMD=B/"\ndomain = "b.example"\n'
        '[[route]]\nmatch = "b.example"\nnext_hop = "gateway:mixer"\n'
        '[[route]]\nmatch = "/C=ZZ/ADMD= /PRMD=B/"\nnext_hop = "x400:B-MTA"\n'
    )


def b_config(smtp_port: int, b_x400: int, a_x400: int) -> str:
    return (
        # Right after ServeProcess's [log] table: B writes the P1 protocol trace.
        'categories = { x400 = "maximum" }\n'
        f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\n'
        "[queue]\npoll_interval = 0.05\n"
        f'[local]\noraddresses = ["/C=ZZ/ADMD= /PRMD=B/"]\nx400_mailboxes = ["{SMITH}"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{b_x400}"]\nmta_name = "B-MTA"\n'
        'global_domain = "/C=ZZ/ADMD= /PRMD=B/"\n'
        '[[x400.peer]]\nname = "A-MTA"\n'
        f'address = "127.0.0.1:{a_x400}"\nour_password = "pb"\npeer_password = "pa"\n'
        '[[route]]\nmatch = "/C=ZZ/ADMD= /PRMD=A/"\nnext_hop = "x400:A-MTA"\n'
    )


@pytest.fixture
def mtas(tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess, int]]:
    a_x400, b_x400, a_smtp = free_port(), free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    b = ServeProcess(tmp_path / "b", b_config(free_port(), b_x400, a_x400))
    a = ServeProcess(tmp_path / "a", a_config(a_smtp, a_x400, b_x400))
    b.start()
    try:
        a.start()
        try:
            yield a, b, a_smtp
        finally:
            a.stop()
    finally:
        b.stop()


def send(port: int, msgid: str, to: str) -> None:
    mail = EmailMessage()
    mail["From"] = "ann@a.example"
    mail["To"] = to
    mail["Subject"] = "tracked"
    mail["Message-ID"] = msgid
    mail.set_content("Follow me.\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
        client.send_message(mail)


def track(mta: ServeProcess, *args: str) -> list[dict[str, Any]]:
    """The records `waypost track --json` prints; [] when nothing matches (exit 1)."""
    done = mta.cli("track", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def track_until(mta: ServeProcess, kind: str, *args: str) -> list[dict[str, Any]]:
    """The records, once one of `kind` is among them (the journal is written in batches)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        records = track(mta, *args)
        if any(r["kind"] == kind for r in records):
            return records
        time.sleep(0.2)
    raise AssertionError(f"no {kind} record for {args}: {track(mta, *args)}")


def test_a_message_is_followed_from_smtp_through_x400_to_the_store(
    mtas: tuple[ServeProcess, ServeProcess, int],
) -> None:
    a, b, port = mtas
    send(port, "<hop-1@client.example>", "Jo.Smith@b.example")

    # A: received over SMTP, converted by the gateway into an X.400 message, which was
    # transferred to B-MTA; B keeps the MTS identifier, so that is B's id for it.
    at_a = track_until(a, "delivered", "--message-id", "hop-1@client.example")
    received = next(r for r in at_a if r["kind"] == "received")
    assert received["fields"]["source"] == "smtp" and received["sender"] == "ann@a.example"
    assert received["msgid"] == "<hop-1@client.example>"
    # Every recipient crossed the gateway, so the message was stored converted: one life.
    assert [r["kind"] for r in at_a] == ["received", "routed", "converted", "delivered"]
    assert at_a[2]["detail"].startswith("Internet mail → X.400 on arrival")
    relayed = [r for r in at_a if r["kind"] == "delivered"]
    assert relayed[0]["next_hop"] == "x400:B-MTA" and relayed[0]["recipient"] == SMITH
    remote = relayed[0]["remote_id"]
    assert remote.startswith("/C=ZZ/ADMD= /PRMD=A/")

    # B: found by the id A's record gives, received over P1 from A and stored locally.
    at_b = track_until(b, "delivered", "--mts-id", remote)
    kinds = [r["kind"] for r in at_b]
    assert kinds[:2] == ["received", "routed"], kinds
    assert at_b[0]["fields"]["source"] == "p1" and "A-MTA" in at_b[0]["fields"]["peer"]
    stored = [r for r in at_b if r["kind"] == "delivered"]
    assert stored[0]["next_hop"] == "local" and stored[0]["recipient"] == SMITH

    # B's x400 category is at maximum: its log has the association's decoded trace, and
    # no password.
    trace = [
        (e["fields"]["direction"], e["fields"]["apdu"])
        for e in b.events()
        if e["name"] == "x400-trace"
    ]
    assert trace[0] == (
        "<",
        "open: bind (MTA name A-MTA, with a password), two-way-alternate, "
        "checkpoint size 30, window 5",
    )
    assert any(d == ">" and t.startswith("bind accepted (MTA name B-MTA") for d, t in trace)
    assert any(d == "<" and t.startswith(f"message {remote} from ") for d, t in trace)
    assert (">", "transfer confirmed") in trace
    assert not any(
        '"pa"' in line or "pb" in line.split() for line in b.log.read_text().splitlines()
    )

    # The human form names the same steps, and the id to ask the next hop for.
    text = a.cli("track", "--message-id", "<hop-1@client.example>").stdout
    assert "received" in text and "converted" in text
    assert f"next hop's id {remote}" in text


def test_a_recipient_the_next_mta_lacks_is_followed_to_its_report(
    mtas: tuple[ServeProcess, ServeProcess, int],
) -> None:
    a, b, port = mtas
    send(port, "<hop-2@client.example>", "No.Body@b.example")

    at_a = track_until(a, "delivered", "--message-id", "hop-2@client.example")
    relayed = next(r for r in at_a if r["kind"] == "delivered")
    at_b = track_until(b, "report", "--mts-id", relayed["remote_id"])
    failed = next(r for r in at_b if r["kind"] == "failed")
    assert "S=Body" in failed["recipient"]
    report = next(r for r in at_b if r["kind"] == "report")
    # B's report, a message of its own, went back to A over P1.
    report_life = [r for r in at_b if r.get("message_id") == report["linked_id"]]
    assert report_life[0]["kind"] == "received"
    assert report_life[0]["fields"]["source"] == "report"
    back = next(r for r in report_life if r["kind"] == "delivered")
    assert back["next_hop"] == "x400:A-MTA"

    # A: the report arrived over P1 under B's MTS identifier; A's gateway turned it into a
    # DSN for ann on arrival, and stored it here.
    at_a_report = track_until(a, "delivered", "--mts-id", back["remote_id"])
    kinds = [r["kind"] for r in at_a_report]
    assert kinds == ["received", "routed", "converted", "delivered"], kinds
    assert at_a_report[0]["fields"]["source"] == "p1"
    assert "X.411 report" in at_a_report[2]["detail"]
    assert at_a_report[3]["recipient"] == "ann@a.example"
