"""`check_database`: the check, the repair and the check after it, and the events they emit."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace

from waypost import events
from waypost.store.check.repair import Notice, repair_database
from waypost.store.check.report import (
    QUARANTINE_REPAIRS,
    SCHEMA_REPAIRS,
    CheckReport,
    FatalKind,
    Repair,
)
from waypost.store.check.scan import Scanner, scan_rows
from waypost.store.check.structure import (
    FatalError,
    Structure,
    check_integrity,
    check_structure,
    describe_error,
    open_readonly,
    read_snapshot,
)


def check_database(path: str, *, repair: bool = False, now: float | None = None) -> CheckReport:
    """Check the MTA database at `path` (Waypost stopped); with `repair`, repair and re-check.

    Never raises for anything wrong with the file: every failure is in the report.
    """
    started = time.perf_counter()
    when = time.time() if now is None else now
    events.emit(events.CHECK_STARTED, path=path)
    notices: list[Notice] = []
    report = _check_and_repair(path, when, notices) if repair else _check(path)
    report = replace(report, seconds=time.perf_counter() - started)
    _emit_events(report, notices)
    return report


def check_shared_database(
    dsn: str, *, repair: bool = False, now: float | None = None
) -> CheckReport:
    """`check_database` for the PostgreSQL MTA database `dsn` names (the nodes may be
    running: see check.postgresql)."""
    # Imported here: a check of an SQLite file does without the PostgreSQL driver.
    from waypost.store.check.postgresql import check_postgresql  # noqa: PLC0415
    from waypost.store.postgresql.database import describe  # noqa: PLC0415

    started = time.perf_counter()
    when = time.time() if now is None else now
    events.emit(events.CHECK_STARTED, path=describe(dsn))
    notices: list[Notice] = []
    report = check_postgresql(dsn, repair=repair, now=when, notices=notices)
    report = replace(report, seconds=time.perf_counter() - started)
    _emit_events(report, notices)
    return report


def _check(path: str) -> CheckReport:
    """The check alone: it only reads."""
    try:
        with read_snapshot(open_readonly(path)) as conn:
            damaged = check_integrity(conn)
            structure = check_structure(conn, damaged)
            scan = scan_rows(conn, unindexed=bool(damaged))
    except FatalError as exc:
        return _fatal(path, exc)
    return _report(path, structure, scan)


def _check_and_repair(path: str, now: float, notices: list[Notice]) -> CheckReport:
    """Repair unless the file is damaged below the row level; then check again.

    `notices` receives the events of a committed repair.
    """
    try:
        conn = open_readonly(path)
    except FatalError as exc:
        return _fatal(path, exc)
    try:
        with read_snapshot(conn):
            damaged = check_integrity(conn)
            check_structure(conn, damaged)
    except FatalError as exc:
        return _fatal(path, exc, repair_requested=True)
    # The file is sound below the row level: only now may it be written to.
    try:
        repaired = repair_database(path, damaged, now)
    except FatalError as exc:
        return _fatal(path, exc, repair_requested=True)
    except Exception as exc:
        # The repair was rolled back: report the database as it still is.
        error = (
            describe_error(exc)
            if isinstance(exc, sqlite3.Error)
            else f"{type(exc).__name__}: {exc}"
        )
        return replace(_check(path), repair_requested=True, repair_error=error)
    notices.extend(repaired.notices)
    report = replace(_report(path, repaired.structure, repaired.scan), repair_requested=True)
    if not report.problems:
        return report
    # The counts are those found before the repair; `after` has the new ones.
    return replace(
        report,
        problems=tuple(replace(p, repaired=True) for p in report.problems),
        repaired=len(report.problems),
        after=_check(path),
    )


def _fatal(path: str, exc: FatalError, *, repair_requested: bool = False) -> CheckReport:
    return CheckReport(
        path=path, fatal=exc.reason, fatal_kind=exc.kind, repair_requested=repair_requested
    )


def _report(path: str, structure: Structure, scan: Scanner) -> CheckReport:
    return CheckReport(
        path=path,
        schema_version=structure.version,
        messages=scan.messages,
        recipients=scan.recipients,
        content=scan.content,
        problems=(*structure.problems, *scan.problems),
        quarantined_messages=scan.quarantined_messages,
        quarantined_recipients=scan.quarantined_recipients,
        quarantine_entries=scan.quarantine_entries,
    )


def _emit_events(report: CheckReport, notices: list[Notice]) -> None:
    if report.fatal is not None:
        if report.fatal_kind in (FatalKind.MISSING, FatalKind.UNREADABLE):
            events.emit(events.STORE_OPEN_FAILED, path=report.path, reason=report.fatal)
        else:
            events.emit(events.STORE_CORRUPT, path=report.path, reason=report.fatal)
    for problem in report.problems:
        events.emit(
            events.CHECK_PROBLEM,
            kind=problem.kind,
            object_id=problem.object_id,
            reason=problem.reason,
        )
    if report.repair_error is not None:
        events.emit(events.CHECK_REPAIR_FAILED, path=report.path, error=report.repair_error)
    for event, fields in notices:
        events.emit(event, **fields)
    repairs = [p.action for p in report.problems if p.repaired]
    quarantined = sum(1 for action in repairs if action in QUARANTINE_REPAIRS)
    if report.repaired:
        events.emit(
            events.CHECK_REPAIRED,
            path=report.path,
            repaired=report.repaired,
            quarantined=quarantined,
            requeued=sum(1 for action in repairs if action is Repair.REQUEUE),
            schema=sum(1 for action in repairs if action in SCHEMA_REPAIRS),
        )
    if report.after is not None:
        if report.after.fatal is not None:
            events.emit(events.STORE_CORRUPT, path=report.path, reason=report.after.fatal)
        for problem in report.after.problems:
            events.emit(
                events.CHECK_PROBLEM,
                kind=problem.kind,
                object_id=problem.object_id,
                reason=f"still there after the repair: {problem.reason}",
            )
    events.emit(
        events.CHECK_FINISHED,
        path=report.path,
        objects=report.objects,
        problems=len(report.problems),
        repaired=quarantined,
    )
