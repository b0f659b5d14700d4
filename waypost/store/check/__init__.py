"""`waypost check`: verify and repair the MTA database offline — Waypost's `mtacheck`.

Exchange 5.5's MTA terminated on one bad object in its database (KB Q276222);
`mtacheck` found such objects and moved them to `mtacheck.out`. This package
does the same for the SQLite MTA database while Waypost is stopped: it checks
SQLite's own integrity, the schema, every message, recipient and content row
and the references between them, and with `repair=True` moves every bad object
to the `quarantine` table (a copy of every row first; nothing is deleted
silently), queues again work leased by workers that no longer exist, and
recreates missing indexes — all in one transaction — then checks again.

Exit codes of `waypost check` (`CheckReport.exit_code`):

* 0 `EXIT_CLEAN` — no problems.
* 1 `EXIT_PROBLEMS` — problems found and not repaired (no `--repair`, or the
  repair failed and was rolled back, or problems remain after it).
* 3 `EXIT_REPAIRED` — problems were found and repaired, and the database now
  checks clean.
* 4 `EXIT_FATAL` — the database cannot be used: missing, unreadable, damaged
  below the row level (SQLite's integrity check fails), not a Waypost
  database, or a schema version this Waypost does not know. `--repair` never
  writes to such a file; `RECOVERY_PROCEDURE` says what to do. (Not 2: every
  `waypost` command keeps 2 for bad usage.)

Modules: `checker` runs the check and the repair, `structure` finds what makes
a file unusable, `scan` checks the rows, `repair` mends them, `report` and
`render` hold and show the result.
"""

from waypost.store.check.checker import check_database, check_shared_database
from waypost.store.check.render import RECOVERY_PROCEDURE, recovery_procedure, render, render_lines
from waypost.store.check.report import (
    EXIT_CLEAN,
    EXIT_FATAL,
    EXIT_PROBLEMS,
    EXIT_REPAIRED,
    CheckReport,
    FatalKind,
    Problem,
    Repair,
)
from waypost.store.check.scan import list_objects

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FATAL",
    "EXIT_PROBLEMS",
    "EXIT_REPAIRED",
    "RECOVERY_PROCEDURE",
    "CheckReport",
    "FatalKind",
    "Problem",
    "Repair",
    "check_database",
    "check_shared_database",
    "list_objects",
    "recovery_procedure",
    "render",
    "render_lines",
]
