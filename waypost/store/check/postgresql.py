"""`waypost check` on the PostgreSQL MTA database, which the cluster's nodes keep using while
it runs: the same row scan and repairs as SQLite's (PostgreSQL guards its own pages and
indexes), in one repeatable-read snapshot; a lease is stale only when no running node holds
it; a repair takes the rows' locks in one transaction, so a node delivering a recipient that
the repair sets aside finds its lease gone and its outcome refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from waypost.store.base import NoDatabaseError, StoreError
from waypost.store.check.repair import Notice, repair_row
from waypost.store.check.report import CheckReport, FatalKind
from waypost.store.check.scan import Scanner, scan_rows
from waypost.store.postgresql.cluster import RUNNING
from waypost.store.postgresql.database import PgDatabase, describe
from waypost.store.postgresql.schema import SCHEMA_VERSION


def _live_owners(db: PgDatabase) -> frozenset[str]:
    rows = db.conn.execute("SELECT run FROM nodes WHERE state = ?", (RUNNING,)).fetchall()
    return frozenset(str(run) for (run,) in rows)


def _open(dsn: str) -> PgDatabase:
    return PgDatabase.connect(dsn, create_schema=False)


def check_postgresql(dsn: str, *, repair: bool, now: float, notices: list[Notice]) -> CheckReport:
    """Check (and with `repair`, repair and check again) the database `dsn` names.

    Never raises: a database that cannot be reached or has no MTA database is a fatal
    report."""
    path = describe(dsn)
    try:
        db = _open(dsn)
    except NoDatabaseError as exc:
        return CheckReport(path=path, fatal=str(exc), fatal_kind=FatalKind.MISSING)
    except StoreError as exc:
        return CheckReport(path=path, fatal=str(exc), fatal_kind=FatalKind.UNREADABLE)
    try:
        report = _check(db, path)
        if not repair or not report.problems:
            return report
        try:
            with db.transaction():
                scan = scan_rows(db.conn, unindexed=False, live_owners=_live_owners(db))
                done = [n for p in scan.problems for n in repair_row(db.conn, p, now)]
        except db.errors as exc:
            return CheckReport(
                path=path,
                schema_version=SCHEMA_VERSION,
                problems=report.problems,
                repair_requested=True,
                repair_error=str(db.translate(exc)),
            )
        notices.extend(done)
        found = _report(path, scan)
        return replace(
            found,
            problems=tuple(replace(p, repaired=True) for p in found.problems),
            repair_requested=True,
            repaired=len(found.problems),
            after=_check(db, path),
        )
    finally:
        db.close()


def _check(db: PgDatabase, path: str) -> CheckReport:
    """The scan in one snapshot (REPEATABLE READ, read only): a consistent view of a queue
    that the nodes keep changing."""
    try:
        db.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            scan = scan_rows(db.conn, unindexed=False, live_owners=_live_owners(db))
        finally:
            db.conn.rollback()
    except db.errors as exc:
        return CheckReport(path=path, fatal=str(db.translate(exc)), fatal_kind=FatalKind.UNREADABLE)
    return _report(path, scan)


def _report(path: str, scan: Scanner) -> CheckReport:
    return CheckReport(
        path=path,
        schema_version=SCHEMA_VERSION,
        messages=scan.messages,
        recipients=scan.recipients,
        content=scan.content,
        problems=tuple(scan.problems),
        quarantined_messages=scan.quarantined_messages,
        quarantined_recipients=scan.quarantined_recipients,
        quarantine_entries=scan.quarantine_entries,
    )


def list_objects(dsn: str) -> Iterator[str]:
    """Every object, one line each (for `waypost check -v`), in one snapshot."""
    try:
        db = _open(dsn)
    except StoreError as exc:
        yield f"(cannot list the objects: {exc})"
        return
    try:
        db.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        scanner = Scanner(db.conn, listing=True, unindexed=False, live_owners=_live_owners(db))
        yield from scanner.run()
        db.conn.rollback()
    except db.errors as exc:
        yield f"(the listing stopped: {db.translate(exc)})"
    finally:
        db.close()
