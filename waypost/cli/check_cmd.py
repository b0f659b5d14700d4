"""`waypost check [--repair] [-v]`: verify (and repair) the MTA database offline, like mtacheck."""

from __future__ import annotations

import argparse
import fcntl
import os
from pathlib import Path
from typing import Any

from waypost.cli.common import CommandError, add_config_option, load
from waypost.setup.intake import database_location
from waypost.store import check


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "check",
        help="verify and repair the MTA database",
        description="Verify the MTA database (SQLite: offline; PostgreSQL: while the nodes "
        "run): SQLite integrity, the schema, every "
        "message and recipient, references, orphaned content, leases and indexes. With "
        "--repair, move every bad object to quarantine (nothing is deleted silently). "
        "Exit codes: 0 clean, 1 problems found, 3 repaired and now clean, 4 the database "
        "file is unusable (see docs/operations.md).",
    )
    add_config_option(parser)
    parser.add_argument("--repair", action="store_true", help="quarantine every bad object")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every object")
    parser.add_argument("--db", metavar="PATH", help="check this database file instead")
    parser.set_defaults(run=run)


def refuse_if_running(db_path: str, data_dir: str) -> None:
    """The checker works offline: refuse to run beside a Waypost that owns the database
    (its pid file is in the data directory, wherever `store.path` puts the database)."""
    pid_file = Path(data_dir) / "waypost.pid"
    if not pid_file.exists():
        return
    fd = os.open(pid_file, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode(errors="replace").strip()
        raise CommandError(
            f"Waypost (pid {pid or '?'}) is running on {db_path}; stop it first"
        ) from None
    finally:
        os.close(fd)


def run(args: argparse.Namespace) -> int:
    if args.db:
        db_path, data_dir = args.db, str(Path(args.db).parent)
    else:
        config = load(args)
        where = database_location(config)
        if not where.is_sqlite:
            return _run_shared(args, where.target)
        db_path, data_dir = where.target, config.server.data_dir
    refuse_if_running(db_path, data_dir)
    report = check.check_database(db_path, repair=args.repair)
    for line in check.render_lines(report, verbose=args.verbose):
        print(line)
    # The code the report prints is the code the command exits with (README: 0, 1, 3, 4).
    return report.exit_code


def _run_shared(args: argparse.Namespace, dsn: str) -> int:
    """The PostgreSQL MTA database, checked while the cluster's nodes run (they need not
    stop: see store.check.postgresql)."""
    from waypost.store.check.postgresql import list_objects  # noqa: PLC0415 - lazy driver

    report = check.check_shared_database(dsn, repair=args.repair)
    for line in check.render_lines(report, verbose=args.verbose, objects=lambda: list_objects(dsn)):
        print(line)
    return report.exit_code
