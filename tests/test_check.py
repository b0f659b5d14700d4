"""`waypost check`: each kind of damage is found and quarantined by repair; nothing else moves."""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import corrupt
import pytest
from corrupt import LATER
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from waypost import events
from waypost.store import Database, quarantine
from waypost.store import check as check_module
from waypost.store.check import (
    EXIT_CLEAN,
    EXIT_FATAL,
    EXIT_PROBLEMS,
    EXIT_REPAIRED,
    CheckReport,
    FatalKind,
    Repair,
    check_database,
    recovery_procedure,
    render,
    render_lines,
)
from waypost.store.schema import INDEXES, SCHEMA_VERSION

REPAIR_TIME = LATER + 100.0
CLAIM_TIME = LATER + 10 * 86400.0


# -- helpers --------------------------------------------------------------------------------------

Row = tuple[object, ...]


def message_rows(path: Path | str) -> dict[int, tuple[Row, Row | None, list[Row]]]:
    """Every message with its content row and recipient rows, exactly as stored."""
    with corrupt.raw(path) as conn:
        out: dict[int, tuple[Row, Row | None, list[Row]]] = {}
        for m in conn.execute("SELECT * FROM messages ORDER BY id"):
            c = conn.execute("SELECT * FROM content WHERE message_id = ?", (m[0],)).fetchone()
            rs = conn.execute(
                "SELECT * FROM recipients WHERE message_id = ? ORDER BY id", (m[0],)
            ).fetchall()
            out[m[0]] = (tuple(m), None if c is None else tuple(c), [tuple(r) for r in rs])
        return out


def recipients_by_message(path: Path | str) -> dict[int, list[int]]:
    with corrupt.raw(path) as conn:
        out: dict[int, list[int]] = {}
        for rid, mid in conn.execute("SELECT id, message_id FROM recipients ORDER BY id"):
            out.setdefault(mid, []).append(rid)
        return out


def quarantine_table(path: Path | str) -> list[tuple[str, int, str, str, bytes | None]]:
    with corrupt.raw(path) as conn:
        return [
            (str(k), int(o), str(reason), str(row), data)
            for k, o, reason, row, data in conn.execute(
                "SELECT kind, object_id, reason, row, data FROM quarantine ORDER BY id"
            )
        ]


def claim_all(path: Path | str) -> set[int]:
    """Claim everything due through the real store; nothing claimed may be quarantined."""
    db = Database.open(str(path))
    try:
        with db.transaction():
            batch = db.claim(CLAIM_TIME, "test:1:alive", 10**7, 60.0)
    finally:
        db.close()
    assert batch.quarantined == []
    return {c.recipient_id for c in batch.claims}


def keys(report: CheckReport) -> set[tuple[str, object]]:
    return {(p.kind, p.object_id) for p in report.problems}


def index_names(path: Path | str) -> set[str]:
    with corrupt.raw(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}


@pytest.fixture
def recorded() -> Iterator[list[logging.LogRecord]]:
    """The events emitted during a test (independent of how logging was configured)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("waypost")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def event_names(records: list[logging.LogRecord]) -> list[str]:
    return [r.waypost_event.name for r in records if hasattr(r, "waypost_event")]


# -- a clean database -----------------------------------------------------------------------------


def test_clean_database_checks_clean(tmp_path: Path, recorded: list[logging.LogRecord]) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 20, [1, 2, 3, 4] * 5)
    report = check_database(str(path))
    assert report.exit_code == EXIT_CLEAN
    assert report.clean and report.fatal is None and report.problems == ()
    assert (report.messages, report.recipients, report.content) == (20, 50, 20)
    assert report.schema_version == SCHEMA_VERSION
    assert event_names(recorded) == ["check-started", "check-finished"]
    text = render(report)
    assert "Messages: 20 checked, 0 bad" in text
    assert "Recipients: 50 checked, 0 bad" in text
    assert "Result: clean (exit code 0)" in text


def test_repair_of_a_clean_database_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 10)
    before = message_rows(path)
    report = check_database(str(path), repair=True, now=REPAIR_TIME)
    assert report.exit_code == EXIT_CLEAN
    assert report.repaired == 0 and report.after is None
    assert message_rows(path) == before
    assert quarantine_table(path) == []


def test_a_database_left_by_an_unclean_stop(tmp_path: Path) -> None:
    """What kill -9 leaves: committed work still in the WAL, and leases of a dead worker."""
    live = tmp_path / "live.db"
    db = Database.open(str(live))
    with db.transaction():
        for number in range(5):
            db.enqueue(corrupt.make_message(number, 2), corrupt.ENQUEUED_AT, corrupt.LIFETIME)
    with db.transaction():
        leased = db.claim(LATER, "mta:4242:gone", 3, 600.0).claims
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    assert (tmp_path / "live.db-wal").stat().st_size > 0
    for suffix in ("", "-wal", "-shm"):
        shutil.copy(f"{live}{suffix}", crashed / f"mta.db{suffix}")
    db.close()

    path = crashed / "mta.db"
    report = check_database(str(path))
    assert (report.messages, report.recipients) == (5, 10)
    assert keys(report) == {("recipient", c.recipient_id) for c in leased}
    assert all(p.action is Repair.REQUEUE for p in report.problems)
    assert check_database(str(path), repair=True, now=REPAIR_TIME).exit_code == EXIT_REPAIRED
    assert quarantine_table(path) == []
    assert len(claim_all(path)) == 10


def test_exit_codes_are_documented() -> None:
    assert (EXIT_CLEAN, EXIT_PROBLEMS, EXIT_FATAL, EXIT_REPAIRED) == (0, 1, 4, 3)
    doc = check_module.__doc__ or ""
    for name in ("EXIT_CLEAN", "EXIT_PROBLEMS", "EXIT_FATAL", "EXIT_REPAIRED"):
        assert name in doc


# -- each damage, alone ---------------------------------------------------------------------------


@dataclass
class Expect:
    """What one damage should make the check find and the repair do."""

    problems: set[tuple[str, object]]
    quarantined: set[tuple[str, int]] = field(default_factory=set)
    damaged_messages: set[int] = field(default_factory=set)
    unclaimable: set[int] = field(default_factory=set)
    then: Callable[[Path], None] | None = None


Damage = Callable[[Path, dict[int, list[int]]], Expect]


def _garble(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    corrupt.garble_envelope(path, 2)
    return Expect({("message", 2)}, {("message", 2)}, {2}, set(rcpts[2]))


def _mistype(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    corrupt.mistype_envelope(path, 3)
    return Expect({("message", 3)}, {("message", 3)}, {3}, set(rcpts[3]))


def _bad_index(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    rid = corrupt.break_rcpt_index(path, rcpts[2][1])
    return Expect({("recipient", rid)}, {("recipient", rid)}, {2}, {rid})


def _bogus_state(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    rid = corrupt.set_bogus_state(path, rcpts[4][0])
    return Expect({("recipient", rid)}, {("recipient", rid)}, {4}, {rid})


def _bad_utf8(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    rid = corrupt.garble_text(path, rcpts[5][0], "next_hop")
    return Expect({("recipient", rid)}, {("recipient", rid)}, {5}, {rid})


def _missing_message(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    rid = rcpts[4][0]
    corrupt.point_recipient_at_missing_message(path, rid)

    def then(path: Path) -> None:
        with corrupt.raw(path) as conn:
            gone = conn.execute("SELECT 1 FROM recipients WHERE id = ?", (rid,)).fetchone()
        assert gone is None  # its row left the queue, its copy is in quarantine

    # Message 4 lost a recipient row to the damage: it is set aside whole.
    both: set[tuple[str, int]] = {("recipient", rid), ("message", 4)}
    return Expect(set(both), both, {4}, set(rcpts[4]), then)


def _truncated(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    corrupt.truncate_content(path, 5)
    return Expect({("message", 5)}, {("message", 5)}, {5}, set(rcpts[5]))


def _no_content(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    corrupt.delete_content(path, 6)
    return Expect({("message", 6)}, {("message", 6)}, {6}, set(rcpts[6]))


def _orphan_content(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    data = b"left behind " * 50
    orphan = corrupt.add_orphan_content(path, data=data)

    def then(path: Path) -> None:
        with corrupt.raw(path) as conn:
            row = conn.execute("SELECT 1 FROM content WHERE message_id = ?", (orphan,)).fetchone()
        assert row is None
        [entry] = quarantine_table(path)
        assert entry[4] == data  # the bytes are kept in quarantine

    return Expect({("content", orphan)}, {("content", orphan)}, set(), set(), then)


def _stale_lease(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    rid = corrupt.strand_lease(path, rcpts[3][1])

    def then(path: Path) -> None:
        with corrupt.raw(path) as conn:
            row = conn.execute(
                "SELECT state, due_at, lease_owner FROM recipients WHERE id = ?", (rid,)
            ).fetchone()
        assert row == ("queued", REPAIR_TIME, None)

    # Queued again, not quarantined: it is claimable after the repair.
    return Expect({("recipient", rid)}, set(), {3}, set(), then)


def _dropped_index(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    name = corrupt.drop_index(path, "recipients_due")

    def then(path: Path) -> None:
        assert set(INDEXES) <= index_names(path)

    return Expect({("index", name)}, then=then)


def _scrambled_index(path: Path, rcpts: dict[int, list[int]]) -> Expect:
    name = corrupt.scramble_index(path)

    def then(path: Path) -> None:
        with corrupt.raw(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    return Expect({("index", name)}, then=then)


DAMAGES: dict[str, Damage] = {
    "garbage envelope": _garble,
    "envelope of the wrong type": _mistype,
    "rcpt_index out of range": _bad_index,
    "recipient state bogus": _bogus_state,
    "recipient text not UTF-8": _bad_utf8,
    "recipient of a missing message": _missing_message,
    "content truncated": _truncated,
    "content row deleted": _no_content,
    "orphaned content": _orphan_content,
    "stale lease": _stale_lease,
    "index dropped": _dropped_index,
    "index disagrees with table": _scrambled_index,
}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_each_damage_is_found_and_repaired(
    tmp_path: Path, name: str, recorded: list[logging.LogRecord]
) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 8, 2)
    rcpts = recipients_by_message(path)
    before = message_rows(path)
    expect = DAMAGES[name](path, rcpts)

    found = check_database(str(path))
    assert found.exit_code == EXIT_PROBLEMS
    assert keys(found) == expect.problems
    text = render(found)
    for problem in found.problems:
        assert problem.reason
        assert not problem.repaired and problem.repair.startswith("repair ")
        assert f"{problem.kind} {problem.object_id}: {problem.reason}" in text
    assert event_names(recorded).count("check-problem") == len(expect.problems)

    recorded.clear()
    repaired = check_database(str(path), repair=True, now=REPAIR_TIME)
    assert repaired.exit_code == EXIT_REPAIRED, render(repaired)
    assert keys(repaired) == expect.problems
    assert all(p.repaired for p in repaired.problems)
    assert repaired.after is not None and repaired.after.clean
    assert "check-repaired" in event_names(recorded)

    # Quarantine holds a copy of exactly the damaged objects.
    entries = quarantine_table(path)
    assert {(kind, oid) for kind, oid, *_ in entries} == expect.quarantined
    assert len(entries) == len(expect.quarantined)
    for kind, oid, reason, row, _data in entries:
        assert reason.startswith("waypost check: ")
        if kind in ("message", "recipient"):
            assert json.loads(row)["id"] == oid

    again = check_database(str(path))
    assert again.exit_code == EXIT_CLEAN, render(again)

    after = message_rows(path)
    for mid, rows in before.items():
        if mid not in expect.damaged_messages:
            assert after[mid] == rows, f"undamaged message {mid} changed"
    if expect.then is not None:
        expect.then(path)
    every = {rid for rids in rcpts.values() for rid in rids}
    assert claim_all(path) == every - expect.unclaimable


def test_message_quarantine_keeps_the_envelope_bytes(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3)
    corrupt.garble_envelope(path, 2)
    with corrupt.raw(path) as conn:
        (blob,) = conn.execute("SELECT envelope FROM messages WHERE id = 2").fetchone()
    check_database(str(path), repair=True, now=REPAIR_TIME)
    [(kind, oid, reason, _row, data)] = quarantine_table(path)
    assert (kind, oid, data) == ("message", 2, blob)
    assert "envelope does not decode" in reason
    with corrupt.raw(path) as conn:
        states = conn.execute("SELECT state FROM recipients WHERE message_id = 2").fetchall()
        assert conn.execute("SELECT state FROM messages WHERE id = 2").fetchone() == (
            "quarantined",
        )
    assert states == [("quarantined",), ("quarantined",)]


def test_the_bad_control_block_index_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3, 2)
    rid = corrupt.recipient_ids(path, 2)[0]
    corrupt.break_rcpt_index(path, rid, 7)
    [problem] = check_database(str(path)).problems
    assert (problem.kind, problem.object_id) == ("recipient", rid)
    assert "recipient index 7 is out of range" in problem.reason
    assert problem.action is Repair.QUARANTINE_RECIPIENT


# -- several damages at once in a larger queue ----------------------------------------------------


def test_several_damages_in_500_messages(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    ids = corrupt.build_database(path, 500, [1, 2, 3] * 166 + [2, 2])
    rcpts = recipients_by_message(path)
    before = message_rows(path)

    corrupt.garble_envelope(path, 17)
    corrupt.mistype_envelope(path, 250)
    bad_index = corrupt.break_rcpt_index(path, rcpts[40][0])
    bogus = corrupt.set_bogus_state(path, rcpts[41][-1])
    orphan_r = rcpts[99][0]
    corrupt.point_recipient_at_missing_message(path, orphan_r)
    corrupt.truncate_content(path, 123)
    corrupt.delete_content(path, 321)
    orphan_c = corrupt.add_orphan_content(path)
    lease = corrupt.strand_lease(path, rcpts[400][0])
    corrupt.drop_index(path, "recipients_report")
    corrupt.scramble_index(path)

    expected = {
        ("message", 17),
        ("message", 250),
        ("recipient", bad_index),
        ("recipient", bogus),
        ("recipient", orphan_r),
        ("message", 99),
        ("message", 123),
        ("message", 321),
        ("content", orphan_c),
        ("recipient", lease),
        ("index", "recipients_report"),
        ("index", "recipients_message"),
    }
    found = check_database(str(path))
    assert found.exit_code == EXIT_PROBLEMS
    assert keys(found) == expected
    assert found.messages == 500

    repaired = check_database(str(path), repair=True, now=REPAIR_TIME)
    assert repaired.exit_code == EXIT_REPAIRED, render(repaired)
    assert repaired.repaired == len(expected)
    assert check_database(str(path)).exit_code == EXIT_CLEAN

    damaged = {17, 250, 40, 41, 99, 123, 321, 400}
    after = message_rows(path)
    assert set(after) == set(ids)  # no message row was deleted
    for mid in ids:
        if mid not in damaged:
            assert after[mid] == before[mid]
    quarantined_messages = {17, 250, 99, 123, 321}
    claimable = {
        rid for mid, rids in rcpts.items() if mid not in quarantined_messages for rid in rids
    } - {bad_index, bogus}
    assert claim_all(path) == claimable
    assert len(quarantine_table(path)) == 9


# -- problems that are not problems ---------------------------------------------------------------


def test_objects_already_quarantined_are_counted_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 5, 2)
    corrupt.garble_envelope(path, 3)
    # The running MTA meets the bad message and quarantines it itself.
    db = Database.open(str(path))
    with db.transaction():
        batch = db.claim(CLAIM_TIME, "mta:1:x", 100, 60.0)
        db.release_leases(CLAIM_TIME)
    db.close()
    assert [q.object_id for q in batch.quarantined] == [3]
    # And a recipient set aside alone, whose row is then damaged further.
    rid = corrupt.recipient_ids(path, 4)[0]
    with corrupt.raw(path) as conn:
        quarantine.quarantine_recipient(conn, rid, "test", CLAIM_TIME)
    corrupt.break_rcpt_index(path, rid)

    report = check_database(str(path))
    assert report.exit_code == EXIT_CLEAN, render(report)
    assert report.quarantined_messages == 1
    assert report.quarantined_recipients == 3
    assert report.quarantine_entries == 2
    listing = render(report, verbose=True)
    assert "message 3 quarantined (2 recipients)" in listing
    assert f"recipient {rid} quarantined" in listing


def test_a_quarantined_recipient_of_a_missing_message_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3, 1)
    rid = corrupt.recipient_ids(path, 2)[0]
    with corrupt.raw(path) as conn:
        quarantine.quarantine_recipient(conn, rid, "test", CLAIM_TIME)
        conn.execute("UPDATE recipients SET message_id = 77 WHERE id = ?", (rid,))
    report = check_database(str(path))
    assert keys(report) == {("recipient", rid), ("message", 2)}
    [p] = [p for p in report.problems if p.kind == "recipient"]
    assert p.action is Repair.REMOVE_RECIPIENT and "77" in p.reason
    assert check_database(str(path), repair=True).exit_code == EXIT_REPAIRED


def test_live_recipient_of_a_quarantined_message_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3, 2)
    with corrupt.raw(path) as conn:
        quarantine.quarantine_message(conn, 2, "test", CLAIM_TIME)
        rid = conn.execute(
            "UPDATE recipients SET state = 'queued', due_at = 1 WHERE message_id = 2 "
            "AND rcpt_index = 0 RETURNING id"
        ).fetchone()[0]
    report = check_database(str(path))
    assert keys(report) == {("recipient", rid)}
    assert "quarantined" in report.problems[0].reason
    assert check_database(str(path), repair=True).exit_code == EXIT_REPAIRED
    assert rid not in claim_all(path)


def test_duplicate_recipient_rows_and_a_message_without_recipients(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 4, 2)
    r2 = corrupt.recipient_ids(path, 2)
    with corrupt.raw(path) as conn:
        conn.execute(
            "UPDATE recipients SET rcpt_index = 0, address = "
            "(SELECT address FROM recipients WHERE id = ?) WHERE id = ?",
            (r2[0], r2[1]),
        )
        conn.execute("DELETE FROM recipients WHERE message_id = 3")
    report = check_database(str(path))
    assert keys(report) == {("recipient", r2[1]), ("message", 3)}
    reasons = {p.object_id: p.reason for p in report.problems}
    assert "already has recipient row" in reasons[r2[1]]
    assert reasons[3] == "has no recipient rows"
    assert check_database(str(path), repair=True).exit_code == EXIT_REPAIRED
    assert check_database(str(path)).exit_code == EXIT_CLEAN


# -- schema ---------------------------------------------------------------------------------------


def test_missing_quarantine_table_and_schema_version_are_repaired(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3)
    corrupt.garble_envelope(path, 1)
    with corrupt.raw(path) as conn:
        conn.execute("DROP TABLE quarantine")
        conn.execute("DELETE FROM meta")
    report = check_database(str(path))
    assert keys(report) == {("table", "quarantine"), ("meta", "schema_version"), ("message", 1)}
    assert report.schema_version is None
    repaired = check_database(str(path), repair=True, now=REPAIR_TIME)
    assert repaired.exit_code == EXIT_REPAIRED, render(repaired)
    assert [e[:2] for e in quarantine_table(path)] == [("message", 1)]
    assert check_database(str(path)).schema_version == SCHEMA_VERSION


def test_unknown_schema_version_is_fatal_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3)
    corrupt.garble_envelope(path, 1)
    with corrupt.raw(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    corrupt.checkpoint(path)
    before = corrupt.file_bytes(path)
    report = check_database(str(path), repair=True)
    assert report.exit_code == EXIT_FATAL
    assert report.fatal_kind is FatalKind.VERSION and "version 99 " in (report.fatal or "")
    assert corrupt.file_bytes(path) == before


def test_a_damaged_schema_version_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3)
    with corrupt.raw(path) as conn:
        conn.execute("UPDATE meta SET value = 'v\x01' WHERE key = 'schema_version'")
    report = check_database(str(path), repair=True)
    assert keys(report) == {("meta", "schema_version")}
    assert report.exit_code == EXIT_REPAIRED
    assert check_database(str(path)).schema_version == SCHEMA_VERSION


def test_a_lost_data_table_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3)
    with corrupt.raw(path) as conn:
        conn.execute("DROP TABLE content")
    report = check_database(str(path), repair=True)
    assert report.exit_code == EXIT_FATAL and report.fatal_kind is FatalKind.SCHEMA
    assert "content" in (report.fatal or "")
    assert "restore the mta database from a backup" in render(report).lower()


# -- fatal: the file itself -----------------------------------------------------------------------


def _assert_fatal_and_untouched(path: Path, kind: FatalKind) -> CheckReport:
    before = corrupt.file_bytes(path)
    report = check_database(str(path))
    assert report.exit_code == EXIT_FATAL
    assert report.fatal_kind is kind, report.fatal
    repaired = check_database(str(path), repair=True)
    assert repaired.exit_code == EXIT_FATAL and repaired.fatal == report.fatal
    assert repaired.repaired == 0 and repaired.after is None
    assert corrupt.file_bytes(path) == before
    return report


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75])
def test_torn_page_is_fatal_and_never_written(
    tmp_path: Path, where: float, recorded: list[logging.LogRecord]
) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 300)
    with corrupt.raw(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    corrupt.tear_page(path, int(pages * where))
    report = _assert_fatal_and_untouched(path, FatalKind.CORRUPT)
    text = render(report, verbose=True)
    assert "FATAL" in text
    assert "Restore the MTA database from a backup" in text
    assert f"sqlite3 {path} .recover | sqlite3 " in text
    assert "waypost check --repair" in text
    assert "Result: the database cannot be used (exit code 4)" in text
    assert "store-corrupt" in event_names(recorded)


def test_not_a_database_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 3)
    corrupt.write_not_a_database(path)
    report = _assert_fatal_and_untouched(path, FatalKind.CORRUPT)
    assert "not an SQLite database" in (report.fatal or "")
    assert ".recover" in render(report)


def test_truncated_file_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 200)
    corrupt.truncate_file(path)
    _assert_fatal_and_untouched(path, FatalKind.CORRUPT)


def test_missing_file_is_fatal_and_not_created(
    tmp_path: Path, recorded: list[logging.LogRecord]
) -> None:
    path = tmp_path / "nowhere" / "mta.db"
    report = check_database(str(path), repair=True)
    assert report.exit_code == EXIT_FATAL and report.fatal_kind is FatalKind.MISSING
    assert "does not exist" in (report.fatal or "")
    assert not path.parent.exists()
    assert "store-open-failed" in event_names(recorded)
    assert "restore it from a backup" in render(report)


def test_a_directory_is_fatal(tmp_path: Path) -> None:
    report = check_database(str(tmp_path), repair=True)
    assert report.exit_code == EXIT_FATAL and report.fatal_kind is FatalKind.UNREADABLE


def test_an_empty_or_foreign_database_is_not_waypost(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    _assert_fatal_and_untouched(empty, FatalKind.NOT_WAYPOST)
    other = tmp_path / "other.db"
    with corrupt.raw(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    report = _assert_fatal_and_untouched(other, FatalKind.NOT_WAYPOST)
    assert "not a Waypost MTA database" in (report.fatal or "")


def test_recovery_procedure_names_the_file() -> None:
    text = recovery_procedure("/var/lib/waypost/mta.db")
    assert (
        "sqlite3 /var/lib/waypost/mta.db .recover | sqlite3 /var/lib/waypost/mta.recovered.db"
        in text
    )
    assert "restore the mta database from a backup" in text.lower()
    assert "delete /var/lib/waypost/mta.db-wal and /var/lib/waypost/mta.db-shm" in text
    assert "waypost check --repair --db /var/lib/waypost/mta.recovered.db" in text
    assert "'/tmp/my db.db'" in recovery_procedure("/tmp/my db.db")


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 command")
def test_the_recovery_procedure_works(tmp_path: Path) -> None:
    """Torn page → salvage with the sqlite3 shell → `check --repair` on the new file → clean."""
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 300)
    corrupt.tear_page(path)
    assert check_database(str(path)).exit_code == EXIT_FATAL
    new = tmp_path / "mta.recovered.db"
    sql = subprocess.run(
        ["sqlite3", str(path), ".recover"], capture_output=True, text=True, check=False
    )
    if sql.returncode != 0 or "error" in sql.stderr or "CREATE TABLE" not in sql.stdout:
        # This sqlite3 has no working .recover (built without the dbpage table):
        # the procedure's fallback, .dump with its final ROLLBACK made a COMMIT.
        sql = subprocess.run(
            ["sqlite3", str(path), ".dump"], capture_output=True, text=True, check=False
        )
        sql.stdout = sql.stdout.replace("ROLLBACK; -- due to errors", "COMMIT;")
    subprocess.run(["sqlite3", str(new)], input=sql.stdout, text=True, check=True)
    report = check_database(str(new), repair=True, now=REPAIR_TIME)
    assert report.exit_code in (EXIT_CLEAN, EXIT_REPAIRED), render(report)
    final = check_database(str(new))
    assert final.exit_code == EXIT_CLEAN
    assert final.messages > 0
    claim_all(new)


# -- repair is one transaction --------------------------------------------------------------------


def test_a_failed_repair_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[logging.LogRecord]
) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 5)
    corrupt.garble_envelope(path, 2)
    corrupt.strand_lease(path, corrupt.recipient_ids(path, 4)[0])
    corrupt.drop_index(path)
    corrupt.add_orphan_content(path)  # repaired last: the failure comes after the others
    before = message_rows(path)

    def disk_full(*args: object, **kwargs: object) -> bool:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(quarantine, "quarantine_content", disk_full)
    report = check_database(str(path), repair=True, now=REPAIR_TIME)
    assert report.exit_code == EXIT_PROBLEMS
    assert report.repair_error is not None and "disk is full" in report.repair_error
    assert report.repaired == 0 and not any(p.repaired for p in report.problems)
    assert len(report.problems) == 4
    assert message_rows(path) == before
    assert quarantine_table(path) == []
    assert "recipients_due" not in index_names(path)
    assert "check-repair-failed" in event_names(recorded)
    assert "rolled back, nothing was changed" in render(report)


# -- rendering ------------------------------------------------------------------------------------


def test_verbose_lists_every_object_and_plain_does_not(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 6, [1, 2, 3, 1, 2, 3])
    orphan = corrupt.add_orphan_content(path)
    report = check_database(str(path))
    rcpts = recipients_by_message(path)
    verbose = render(report, verbose=True).splitlines()
    plain_text = render(report)
    plain = plain_text.splitlines()
    for mid, rids in rcpts.items():
        [line] = [x for x in verbose if x.strip().startswith(f"message {mid} ")]
        assert f"({len(rids)} recipient" in line
        for rid in rids:
            assert any(x.strip() == f"recipient {rid} ok queued" for x in verbose)
    assert any(x.strip().startswith(f"content {orphan} BAD: is orphaned") for x in verbose)
    assert "  message 1 ok (1 recipient, 64 bytes)" in "\n".join(verbose)
    assert not any("ok queued" in x or x.strip().startswith("message ") for x in plain)
    assert len(verbose) == len(plain) + 1 + 6 + 12 + 1
    assert "Messages: 6 checked, 0 bad" in plain_text
    assert "Content: 7 checked, 1 orphaned" in plain_text
    assert (
        f"  content {orphan}: is orphaned: no message {orphan} (140 bytes)  "
        "→ repair moves the content to the quarantine table"
    ) in plain


def test_verbose_listing_is_streamed(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 50)
    report = check_database(str(path))
    assert inspect.isgenerator(render_lines(report, verbose=True))  # streamed, not a list
    lines = render_lines(report, verbose=True)
    first = list(itertools.islice(lines, 6))
    assert first[0] == f"Waypost check of {path}"
    assert first[4].strip() == "message 1 ok (2 recipients, 64 bytes)"
    lines.close()  # a reader may stop early: the listing's connection is closed with it
    assert check_database(str(path), repair=True).exit_code == EXIT_CLEAN


def test_render_of_a_repair(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 4)
    corrupt.garble_envelope(path, 3)
    corrupt.strand_lease(path, 1)
    text = render(check_database(str(path), repair=True, now=REPAIR_TIME))
    assert "message 3: envelope does not decode" in text
    assert "→ moved the message and its recipients to quarantine" in text
    assert "recipient 1: is leased by 'host:99999:dead'" in text
    assert "→ queued again" in text
    assert "Repair: 2 problems repaired in one transaction" in text
    assert "Check after repair: clean (4 messages, 8 recipients, 4 content rows; " in text
    assert text.endswith("Result: repaired; the database checks clean (exit code 3)")


# -- properties -----------------------------------------------------------------------------------


def _point_away(path: Path, message_id: int, rcpts: list[int]) -> set[tuple[str, object]]:
    corrupt.point_recipient_at_missing_message(path, rcpts[0])
    return {("recipient", rcpts[0])}


# Damages applied to one message (or its first recipient), with what the check must name.
ROW_DAMAGES: dict[str, Callable[[Path, int, list[int]], set[tuple[str, object]]]] = {
    "garble_envelope": lambda p, m, r: {("message", corrupt.garble_envelope(p, m))},
    "mistype_envelope": lambda p, m, r: {("message", corrupt.mistype_envelope(p, m))},
    "break_rcpt_index": lambda p, m, r: {("recipient", corrupt.break_rcpt_index(p, r[0]))},
    "set_bogus_state": lambda p, m, r: {("recipient", corrupt.set_bogus_state(p, r[0]))},
    "garble_text": lambda p, m, r: {("recipient", corrupt.garble_text(p, r[0], "address"))},
    "point_recipient_at_missing_message": _point_away,
    "truncate_content": lambda p, m, r: {("message", corrupt.truncate_content(p, m))},
    "delete_content": lambda p, m, r: {("message", corrupt.delete_content(p, m))},
    "strand_lease": lambda p, m, r: {("recipient", corrupt.strand_lease(p, r[0]))},
}
INDEX_DAMAGES: dict[str, Callable[[Path], str]] = {
    "drop recipients_due": lambda p: corrupt.drop_index(p, "recipients_due"),
    "drop recipients_report": lambda p: corrupt.drop_index(p, "recipients_report"),
    "scramble recipients_message": corrupt.scramble_index,
}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_damage_is_found_and_repaired(data: st.DataObject) -> None:
    counts = data.draw(st.lists(st.integers(1, 3), min_size=2, max_size=10), label="recipients")
    damages = data.draw(
        st.lists(st.sampled_from(sorted(ROW_DAMAGES)), max_size=min(4, len(counts))),
        label="row damages",
    )
    orphans = data.draw(st.integers(0, 2), label="orphaned content rows")
    index_damages = data.draw(st.sets(st.sampled_from(sorted(INDEX_DAMAGES))), label="indexes")
    assume(damages or orphans or index_damages)
    targets = data.draw(st.permutations(range(len(counts))), label="targets")[: len(damages)]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mta.db"
        ids = corrupt.build_database(path, len(counts), counts)
        rcpts = recipients_by_message(path)
        before = message_rows(path)
        expected: list[set[tuple[str, object]]] = []
        damaged: set[int] = set()
        for name, target in zip(damages, targets, strict=True):
            mid = ids[target]
            expected.append(ROW_DAMAGES[name](path, mid, rcpts[mid]))
            damaged.add(mid)
        for _ in range(orphans):
            expected.append({("content", corrupt.add_orphan_content(path))})
        for name in sorted(index_damages):  # last: writes after a scramble would trip on it
            expected.append({("index", INDEX_DAMAGES[name](path))})

        found = check_database(str(path))
        assert found.fatal is None
        for wanted in expected:
            assert wanted & keys(found), (wanted, keys(found))
        # Nothing undamaged is reported.
        allowed = (
            {("message", m) for m in damaged}
            | {("recipient", r) for m in damaged for r in rcpts[m]}
            | set().union(*expected)
        )
        assert keys(found) <= allowed

        repaired = check_database(str(path), repair=True, now=REPAIR_TIME)
        assert repaired.exit_code == EXIT_REPAIRED, render(repaired)
        assert check_database(str(path)).exit_code == EXIT_CLEAN

        after = message_rows(path)
        untouched = [m for m in ids if m not in damaged]
        for mid in untouched:
            assert after[mid] == before[mid]
        claimed = claim_all(path)
        assert {r for m in untouched for r in rcpts[m]} <= claimed


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 8))
def test_random_byte_flips_never_raise_and_never_half_repair(seed: int, flips: int) -> None:
    """Flipped bytes anywhere past the header: fatal and untouched, or repaired to clean."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mta.db"
        corrupt.build_database(path, 40, [1, 2, 3, 4] * 10)
        corrupt.checkpoint(path)
        rng = random.Random(seed)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            for _ in range(flips):
                offset = rng.randrange(4096, size)
                f.seek(offset)
                byte = f.read(1)[0]
                f.seek(offset)
                f.write(bytes([byte ^ (1 << rng.randrange(8))]))
        before = corrupt.file_bytes(path)
        report = check_database(str(path), repair=True, now=REPAIR_TIME)
        render(report, verbose=True)
        if report.fatal is not None:
            assert corrupt.file_bytes(path) == before
        else:
            assert report.exit_code in (EXIT_CLEAN, EXIT_REPAIRED), render(report)
            assert check_database(str(path)).exit_code == EXIT_CLEAN


@given(st.binary(max_size=5000))
@settings(max_examples=30, deadline=None)
def test_any_bytes_as_a_file_never_raise(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mta.db"
        path.write_bytes(blob)
        report = check_database(str(path), repair=True)
        assert report.exit_code == EXIT_FATAL
        assert path.read_bytes() == blob
        render(report, verbose=True)


# -- speed ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_large_clean_database_checks_clean(tmp_path: Path) -> None:
    # (How fast: bench/check.py.)
    path = tmp_path / "mta.db"
    corrupt.build_database(path, 20_000, 3)
    report = check_database(str(path))
    assert report.exit_code == EXIT_CLEAN
    assert report.recipients == 60_000


def test_events_catalogue_has_the_check_block() -> None:
    for name in (
        "check-started",
        "check-finished",
        "check-problem",
        "check-repaired",
        "check-repair-failed",
    ):
        assert 1300 <= events.by_name(name).id < 1400
