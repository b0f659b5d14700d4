"""The report as readable lines, like mtacheck's, and the recovery procedure for a damaged file."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Generator, Iterable, Iterator

from waypost.store.check.report import (
    EXIT_CLEAN,
    EXIT_FATAL,
    EXIT_PROBLEMS,
    EXIT_REPAIRED,
    QUARANTINE_REPAIRS,
    SCHEMA_REPAIRS,
    CheckReport,
    FatalKind,
    Repair,
    plural,
)
from waypost.store.check.scan import list_objects

RECOVERY_PROCEDURE = """\
Waypost cannot use this file, and `waypost check --repair` does not rewrite a file
damaged below the row level (that could make it worse). To recover:
  1. Keep Waypost stopped. Copy {path} aside, with its -wal and -shm files if they exist.
  2. Restore the MTA database from a backup, or salvage what SQLite can still read
     into a new file (one that does not exist yet):
       sqlite3 {path} .recover | sqlite3 {new}
     If that sqlite3 has no working .recover ("SQL logic error"), .dump saves the rows
     it can read before the damage:
       sqlite3 {path} .dump | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' | sqlite3 {new}
  3. Run `waypost check --repair --db {new}`: it moves what the damage broke to
     quarantine. When it checks clean, delete {path}-wal and {path}-shm (they belong
     to the damaged file), put {new} in place of {path}, and start Waypost."""

# What to do about a fatal problem that is not damage to the file.
_FATAL_HINT: dict[FatalKind, str] = {
    FatalKind.MISSING: "Check the path (the MTA database is mta.db in the data directory). "
    "If the file was lost, restore it from a backup.",
    FatalKind.UNREADABLE: "Check that it is a file, its permissions, and the disk it is on.",
    FatalKind.NOT_WAYPOST: "Check the path: this is not the MTA database. Nothing was changed.",
    FatalKind.VERSION: "Use the Waypost release that wrote this database; this one does not "
    "repair it. Nothing was changed.",
}

_RESULT = {
    EXIT_CLEAN: "clean",
    EXIT_PROBLEMS: "problems found",
    EXIT_FATAL: "the database cannot be used",
    EXIT_REPAIRED: "repaired; the database checks clean",
}


def recovery_procedure(path: str) -> str:
    """The recovery procedure for a database damaged below the row level, for this file."""
    stem, ext = os.path.splitext(path)
    new = f"{stem}.recovered{ext or '.db'}"
    return RECOVERY_PROCEDURE.format(path=shlex.quote(path), new=shlex.quote(new))


def render(report: CheckReport, verbose: bool = False) -> str:
    """The whole report as one string; for a large queue write `render_lines` line by line."""
    return "\n".join(render_lines(report, verbose))


def render_lines(
    report: CheckReport,
    verbose: bool = False,
    objects: Callable[[], Iterable[str]] | None = None,
) -> Generator[str, None, None]:
    """The report as readable lines, like mtacheck's; `verbose` adds every object, streamed
    (from `objects`, when given: those of a database other than an SQLite file)."""
    yield f"Waypost check of {report.path}"
    if report.fatal is not None:
        yield f"FATAL ({report.fatal_kind}): {report.fatal}"
        hint = _FATAL_HINT.get(report.fatal_kind) if report.fatal_kind else None
        if hint is not None:
            yield hint
        else:
            yield from recovery_procedure(report.path).splitlines()
        yield f"Result: the database cannot be used (exit code {report.exit_code})"
        return
    indexes = [p for p in report.problems if p.action is Repair.REINDEX]
    if objects is None:  # PostgreSQL guards its own pages and indexes
        yield "SQLite integrity: " + (
            "ok"
            if not indexes
            else "ok but for index "
            + ", ".join(str(p.object_id) for p in indexes)
            + " (disagrees with its table)"
        )
    schema = [p for p in report.problems if p.action in SCHEMA_REPAIRS]
    yield f"Schema: version {report.schema_version or 'not recorded'}, " + (
        "tables and indexes ok" if not schema else plural(len(schema), "problem")
    )
    if verbose:
        repaired = report.after is not None and report.after.fatal is None
        yield "Objects (after repair):" if repaired else "Objects:"
        # Until a repair has rebuilt them, damaged indexes must not steer the listing.
        unindexed = bool(indexes) and report.after is None
        listed = (
            objects() if objects is not None else list_objects(report.path, unindexed=unindexed)
        )
        yield from (f"  {line}" for line in listed)
    yield from _sections(report)
    if report.problems:
        yield f"Problems ({len(report.problems):,}):"
        for p in report.problems:
            yield f"  {p.kind} {p.object_id}: {p.reason}  → {p.repair}"
    if report.repair_error is not None:
        yield f"Repair failed and was rolled back, nothing was changed: {report.repair_error}"
    elif report.repaired:
        quarantined = sum(1 for p in report.problems if p.action in QUARANTINE_REPAIRS)
        requeued = sum(1 for p in report.problems if p.action is Repair.REQUEUE)
        yield (
            f"Repair: {plural(report.repaired, 'problem')} repaired in one transaction "
            f"({quarantined:,} moved to quarantine, {plural(requeued, 'stale lease')} "
            f"queued again, {len(schema):,} schema repairs)"
        )
    elif report.problems and not report.repair_requested:
        yield "Run `waypost check --repair` to repair them (Waypost must be stopped)."
    if report.after is not None:
        yield from _after_repair(report.after)
    yield f"Result: {_RESULT[report.exit_code]} (exit code {report.exit_code})"


def _sections(report: CheckReport) -> Iterator[str]:
    """One line per kind of object: how many were checked, and how many are bad."""

    def bad(kind: str, *, leases: bool = False) -> int:
        return sum(
            1 for p in report.problems if p.kind == kind and (p.action is Repair.REQUEUE) == leases
        )

    yield (
        f"Messages: {report.messages:,} checked, {bad('message'):,} bad, "
        f"{report.quarantined_messages:,} already quarantined"
    )
    yield (
        f"Recipients: {report.recipients:,} checked, {bad('recipient'):,} bad, "
        f"{plural(bad('recipient', leases=True), 'stale lease')}, "
        f"{report.quarantined_recipients:,} already quarantined"
    )
    yield f"Content: {report.content:,} checked, {bad('content'):,} orphaned"
    yield f"Quarantine table: {plural(report.quarantine_entries, 'entry', 'entries')}"
    if report.seconds and not report.repaired:
        rate = report.recipients / report.seconds
        yield f"Time: {report.seconds:.2f} s ({rate:,.0f} recipients/s)"
    elif report.seconds:
        yield f"Time: {report.seconds:.2f} s, with the repair and the check after it"


def _after_repair(after: CheckReport) -> Iterator[str]:
    if after.fatal is not None:
        yield f"Check after repair: FATAL: {after.fatal}"
    elif after.clean:
        yield (
            f"Check after repair: clean ({after.messages:,} messages, "
            f"{after.recipients:,} recipients, {after.content:,} content rows; "
            f"quarantine table {plural(after.quarantine_entries, 'entry', 'entries')})"
        )
    else:
        yield f"Check after repair: {plural(len(after.problems), 'problem')} remain:"
        for p in after.problems:
            yield f"  {p.kind} {p.object_id}: {p.reason}"
