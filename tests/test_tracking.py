"""The tracking journal on its own: records from events, retention by age and size, the
search by each identifier and through links, and the ids read from replies and headers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost import events
from waypost.message import header_message_id
from waypost.tracking.journal import Journal, Record, Retention, connect, first_id_at
from waypost.tracking.query import TrackQuery, find
from waypost.tracking.recorder import record_into, remote_id


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "tracking.db")


def test_the_next_hops_id_is_read_from_its_reply() -> None:
    assert remote_id("250 2.0.0 Ok: queued as 4F2A1C") == "4F2A1C"
    assert remote_id("250 OK id=1tK3xq-000Abc-Zz") == "1tK3xq-000Abc-Zz"
    assert remote_id("250 2.0.0 Ok: queued as 17") == "17"
    assert remote_id("250 Message accepted for delivery") is None


def test_the_message_id_is_read_from_the_header_only() -> None:
    content = b"From: a@x\r\nMessage-ID:\r\n <a.b@c>\r\nSubject: s\r\n\r\nMessage-ID: <body@x>\r\n"
    assert header_message_id(content) == "<a.b@c>"
    assert header_message_id(b"message-id: <first@x>\nTo: b\n\nbody") == "<first@x>"
    assert header_message_id(b"Subject: none\r\n\r\nMessage-ID: <body@x>\r\n") is None
    assert header_message_id(b"") is None


@given(st.binary(max_size=300))
def test_reading_the_message_id_never_fails(content: bytes) -> None:
    found = header_message_id(content)
    assert found is None or (0 < len(found) <= 998)


def test_events_become_records_that_find_a_message_by_each_of_its_ids(journal: Journal) -> None:
    stop = record_into(journal)
    try:
        events.emit(
            events.MESSAGE_QUEUED,
            message_id=7,
            mts_id="m7@a.test",
            msgid="<x7@client>",
            sender="ann@a.test",
            source="smtp",
            peer="192.0.2.1",
            tls="TLSv1.3 with cipher TLS_AES_128_GCM_SHA256",
            auth="ann",
            size=1234,
            recipients=2,
            routes=(("bob@b.test", "smtp:b.test"), ("cy@c.test", "local")),
        )
        events.emit(
            events.DELIVERED,
            message_id=7,
            recipient="bob@b.test",
            next_hop="smtp:b.test",
            mts_id="m7@a.test",
            size=1234,
            detail="250 2.0.0 Ok: queued as 99AA",
            remote_mta="mx.b.test",
        )
        events.emit(
            events.RECIPIENT_FAILED,
            message_id=7,
            recipient="cy@c.test",
            error="5.1.1 no such user",
            next_hop="local",
            mts_id="m7@a.test",
        )
        events.emit(
            events.REPORT_QUEUED,
            kind="dsn",
            message_id=7,
            recipients=1,
            report_id=8,
            to="ann@a.test",
        )
    finally:
        stop()
    events.emit(events.DELIVERED, message_id=9, recipient="x", next_hop="local")  # not heard
    journal.flush()
    conn = connect(journal.path, readonly=True)
    for query in (
        TrackQuery(message_id=7),
        TrackQuery(msgid="x7@client"),
        TrackQuery(mts_id="m7@a.test"),
        TrackQuery(remote_id="99AA"),
        TrackQuery(sender="@a.test"),
        TrackQuery(recipient="cy@*"),
        TrackQuery(message_id=8),  # the report leads back to its message
    ):
        lives = find(conn, query)
        assert [life.message_id for life in lives] == [7], query
        kinds = [r.kind for r in lives[0].records]
        assert kinds == ["received", "routed", "routed", "delivered", "failed", "report"]
    life = find(conn, TrackQuery(message_id=7))[0]
    assert life.msgid == "<x7@client>" and life.mts_id == "m7@a.test"
    received = life.records[0]
    assert received.fields["auth"] == "ann" and received.fields["size"] == 1234
    assert life.records[3].remote_id == "99AA"
    assert find(conn, TrackQuery(message_id=9)) == []
    assert find(conn, TrackQuery(msgid="nobody@x")) == []


def test_a_link_is_followed_both_ways(journal: Journal) -> None:
    now = time.time()
    journal.extend(
        [
            Record(at=now, kind="received", message_id=1, mts_id="one"),
            Record(at=now + 1, kind="converted", message_id=1, linked_id=2),
            Record(at=now + 1, kind="received", message_id=2, mts_id="two"),
            Record(at=now + 2, kind="delivered", message_id=2, next_hop="x400:B"),
            Record(at=now + 3, kind="received", message_id=3, mts_id="unrelated"),
        ]
    )
    journal.flush()
    conn = connect(journal.path, readonly=True)
    for query in (TrackQuery(mts_id="one"), TrackQuery(mts_id="two")):
        lives = find(conn, query)
        assert [(life.message_id, life.made_from) for life in lives] == [(1, None), (2, 1)]


def test_records_past_their_age_or_count_are_pruned(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "t.db", Retention(seconds=100.0, max_records=1000))
    now = time.time()
    journal.extend(Record(at=now - 500, kind="received", message_id=i) for i in range(10))
    journal.extend(Record(at=now, kind="received", message_id=i) for i in range(10, 1510))
    journal.flush()
    assert journal.prune(now) == 10 + 500
    conn = connect(journal.path, readonly=True)
    ids = [row[0] for row in conn.execute("SELECT message_id FROM records ORDER BY id")]
    assert ids == list(range(510, 1510))  # the newest 1000


def test_the_writer_thread_writes_what_is_added(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "t.db", interval=0.01)
    journal.start()
    journal.add(Record(at=time.time(), kind="received", message_id=1))
    deadline = time.monotonic() + 10
    while journal.written == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert journal.written == 1
    journal.close()
    conn = connect(tmp_path / "t.db", readonly=True)
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1


def test_a_journal_that_cannot_be_written_loses_records_not_the_caller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path / "t.db")
    journal._conn.execute("DROP TABLE records")  # as a damaged file would fail
    journal.add(Record(at=time.time(), kind="received", message_id=1))
    journal.add(Record(at=time.time(), kind="received", message_id=2))
    journal.flush()
    journal.add(Record(at=time.time(), kind="received", message_id=3))
    journal.flush()
    assert journal.dropped == 3 and journal.error is not None
    failed = [r for r in caplog.records if "tracking journal" in r.getMessage()]
    assert len(failed) == 1  # once as it starts failing, not at every flush


def test_an_observer_that_fails_costs_its_record_only(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: events.EventDefinition, fields: object) -> None:
        raise RuntimeError("observer bug")

    caplog.set_level(logging.INFO, logger="waypost")
    stop = events.observe([events.DELIVERED], broken)
    try:
        events.emit(events.DELIVERED, message_id=1, recipient="a@b", next_hop="local")
    finally:
        stop()
    lines = [r.getMessage() for r in caplog.records]
    assert any("Message 1 delivered" in line for line in lines)
    assert any("observer bug" in line for line in lines)


def _waypost(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waypost.cli.main", *args, "-c", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_commands_record_what_they_do_to_a_message(tmp_path: Path) -> None:
    # `waypost submit` and an operator's `waypost queue hold` with no MTA running: both
    # are steps of the message's life, found by `waypost track` afterwards.
    config = tmp_path / "waypost.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    done = _waypost(
        config,
        "submit",
        "--create",
        "--from",
        "ann@localhost",
        "--to",
        "bob@localhost",
        stdin="Message-ID: <cli-1@localhost>\nSubject: s\n\nbody\n",
    )
    assert done.returncode == 0, done.stderr
    message_id = done.stdout.split()[2]
    assert _waypost(config, "queue", "hold", message_id).returncode == 0
    shown = _waypost(config, "track", "--message-id", "cli-1@localhost", "--json")
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["kind"] for r in records] == ["received", "routed", "operator"]
    assert records[0]["fields"]["source"] == "submit" and "uid" in records[0]["fields"]["peer"]
    assert records[2]["detail"].startswith("hold by ")
    assert _waypost(config, "track", "--message-id", "nothing@x").returncode == 1
    assert _waypost(config, "track").returncode == 1  # nothing to look for: said so


def test_a_time_is_found_among_the_ids(journal: Journal) -> None:
    journal.extend(Record(at=100.0 + i, kind="received", message_id=i) for i in range(50))
    journal.flush()
    conn = connect(journal.path, readonly=True)
    assert first_id_at(conn, 0.0) == 1
    assert first_id_at(conn, 110.0) == 11
    assert first_id_at(conn, 110.5) == 12
    assert first_id_at(conn, 1000.0) == 51  # after the last
    since = find(conn, TrackQuery(since=140.0))
    assert [life.message_id for life in since] == list(range(40, 50))
    window = find(conn, TrackQuery(since=105.0, until=107.0))
    assert [life.message_id for life in window] == [5, 6, 7]
