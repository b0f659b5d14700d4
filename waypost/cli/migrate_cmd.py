"""`waypost migrate --to-postgresql DSN | --to-sqlite PATH`: copy the configured MTA database
into the other kind, with nothing lost (store.migrate), while Waypost is stopped."""

from __future__ import annotations

import argparse
import time
from typing import Any

from waypost.cli.check_cmd import refuse_if_running
from waypost.cli.common import EXIT_OK, CommandError, add_config_option, load
from waypost.setup.intake import database_location
from waypost.store import check
from waypost.store.base import StoreError
from waypost.store.location import DatabaseLocation
from waypost.store.migrate import copy


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "migrate",
        help="copy the MTA database into PostgreSQL, or back into SQLite",
        description="Copy every message, recipient, content and quarantine row of the "
        "configured MTA database into an empty database of the other kind, in one "
        "transaction, and compare the copy with its source row for row before it commits. "
        "Waypost must be stopped (every node, for PostgreSQL) and the source must check "
        "clean. Leased recipients arrive queued. Then set [store] to the new database.",
    )
    add_config_option(parser)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-postgresql", metavar="DSN", help="a libpq connection string")
    target.add_argument("--to-sqlite", metavar="PATH", help="a new SQLite database file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    source = database_location(config)
    target = (
        DatabaseLocation("postgresql", args.to_postgresql)
        if args.to_postgresql
        else DatabaseLocation("sqlite", args.to_sqlite)
    )
    if source.backend == target.backend:
        raise CommandError(f"the MTA database is {source.backend} already ({source})")
    if source.is_sqlite:
        refuse_if_running(source.target, config.server.data_dir)
        report = check.check_database(source.target)
    else:
        _refuse_if_nodes_run(source, config.cluster.node_timeout)
        report = check.check_shared_database(source.target)
    # Stale leases are no problem here: the copy queues their recipients again.
    problems = [p for p in report.problems if p.action is not check.Repair.REQUEUE]
    if report.fatal is not None or problems:
        what = report.fatal or f"{len(problems)} problems"
        raise CommandError(
            f"{source} does not check clean ({what}): run `waypost check --repair` first"
        )
    now = time.time()
    try:
        from_db = source.open(readonly=True)
        try:
            to_db = target.open(create_schema=True)
            try:
                copied = copy(from_db, to_db, now)
            except to_db.errors as exc:
                raise to_db.translate(exc) from None
            finally:
                to_db.close()
        finally:
            from_db.close()
    except StoreError as exc:
        raise CommandError(f"nothing copied to {target}: {exc}") from None
    counts = ", ".join(f"{count} {table}" for table, count in copied.rows.items())
    print(f"copied {source} to {target}: {counts}; the copy matches its source")
    if copied.released:
        print(f"{copied.released} leased recipients are queued again in the copy")
    backend = "postgresql" if target.backend == "postgresql" else "sqlite"
    print(f'now set [store] backend = "{backend}" (and its dsn or path), then start Waypost')
    return EXIT_OK


def _refuse_if_nodes_run(source: DatabaseLocation, timeout: float) -> None:
    from waypost.store.postgresql.cluster import status  # noqa: PLC0415 - lazy driver

    try:
        db = source.open(readonly=True)
        try:
            nodes = status(db)
        finally:
            db.close()
    except StoreError as exc:
        raise CommandError(f"cannot read {source}: {exc}") from None
    # A node killed without a word stays "running" until its heartbeat is node_timeout old.
    running = [n.name for n in nodes if n.state == "running" and n.heartbeat_age < timeout]
    if running:
        raise CommandError(f"nodes {', '.join(running)} are running on {source}; stop them first")
