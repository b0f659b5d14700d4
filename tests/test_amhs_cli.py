"""`waypost submit --ats` builds an ATS message (ICAO Doc 9880 Part II), and `waypost queue
show` reads its ATS message header back, as text and as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_cli import no_traceback, waypost, write_config

from waypost.amhs.ats import split_header
from waypost.store.database import Database
from waypost.x400.ipm_bodies import FileTransfer, IA5Text
from waypost.x400.ipm_codec import decode_ipm

ORIGINATOR = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/O=BA-REGION/OU1=BAAA/CN=BAAAFTAA/"
RECIPIENT = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBZQZX/"
ROUTE = '[[route]]\nmatch = "/C=XX/ADMD=ICAO/"\nnext_hop = "error:5.4.4 not here"\n'


def submit(tmp_path: Path, *args: str) -> tuple[int, str]:
    config = write_config(tmp_path, ROUTE)
    result = waypost(
        "submit", "-c", str(config), "--create", "--from", ORIGINATOR, "--to", RECIPIENT, *args,
        "-", stdin=b"METAR BBBB 041020Z 27010KT\nSECOND LINE\n", cwd=tmp_path,
    )  # fmt: skip
    no_traceback(result)
    found = re.search(r"queued as (\d+)", result.stdout)
    return (int(found.group(1)) if found else -1), result.stderr


def test_submit_ats_builds_the_header_priority_and_attachment(tmp_path: Path) -> None:
    iwxxm = tmp_path / "metar.xml"
    iwxxm.write_bytes(b"<iwxxm:METAR/>\x00\xff")
    message_id, _ = submit(
        tmp_path, "--ats", "SS", "--filing-time", "041030", "--ohi", "CT501", "--attach", str(iwxxm)
    )
    db = Database.open(str(tmp_path / "data" / "mta.db"))
    try:
        content = db.read_content(message_id)
        ranks = db.conn.execute("SELECT rank FROM recipients").fetchall()
    finally:
        db.close()
    assert ranks == [(0,)]  # SS travels urgent, first in the queue
    ipm = decode_ipm(content)
    text, attachment = ipm.body
    assert isinstance(text, IA5Text) and isinstance(attachment, FileTransfer)
    header, rest = split_header(text.text)
    assert header is not None
    assert (header.priority, header.filing_time, header.ohi) == ("SS", "041030", "CT501")
    assert rest == "METAR BBBB 041020Z 27010KT\r\nSECOND LINE\r\n"
    assert (attachment.filename, attachment.data) == ("metar.xml", b"<iwxxm:METAR/>\x00\xff")

    config = tmp_path / "waypost.toml"
    shown = waypost("queue", "show", str(message_id), "-c", str(config), cwd=tmp_path)
    assert "  Priority:       urgent" in shown.stdout
    assert "ATS message header:" in shown.stdout
    assert "    Priority:       SS (travels urgent)" in shown.stdout
    assert "    Filing time:    041030" in shown.stdout
    assert "    Heading info:   CT501" in shown.stdout
    document = json.loads(
        waypost("queue", "show", str(message_id), "--json", "-c", str(config), cwd=tmp_path).stdout
    )
    assert document["ats"] == {"priority": "SS", "filing_time": "041030", "ohi": "CT501"}
    assert document["priority"] == "urgent"


def test_a_bad_ats_header_is_refused_before_anything_is_queued(tmp_path: Path) -> None:
    message_id, stderr = submit(tmp_path, "--ats", "SS", "--filing-time", "321200")
    assert message_id == -1 and "ATS message header: filing time '321200' is not DDHHMM" in stderr
    message_id, stderr = submit(tmp_path, "--ats", "XX")
    assert message_id == -1 and "priority indicator 'XX' is not one of SS" in stderr
    message_id, stderr = submit(tmp_path, "--ohi", "REF")
    assert message_id == -1 and "give --ats" in stderr
