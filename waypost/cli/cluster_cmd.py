"""`waypost cluster status`: the nodes sharing the PostgreSQL MTA database, their heartbeats
and their leases."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from waypost.cli.common import EXIT_OK, CommandError, add_config_option, load
from waypost.setup.intake import database_location
from waypost.store.base import StoreError


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "cluster",
        help="the nodes sharing a PostgreSQL MTA database",
        description='The nodes of the cluster ([store] backend = "postgresql"): each one\'s '
        "name, host and process, its state (running, stopped, lost), the age of its last "
        "heartbeat by the database server's clock, and the recipients it holds leased.",
    )
    actions = parser.add_subparsers(dest="cluster_action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="list the nodes")
    add_config_option(status)
    status.add_argument("--json", action="store_true", help="one JSON object per node")
    status.set_defaults(run=run_status)


def run_status(args: argparse.Namespace) -> int:
    config = load(args)
    where = database_location(config)
    if where.is_sqlite:
        raise CommandError(
            'the MTA database is SQLite, used by one node: a cluster needs backend = "postgresql"'
        )
    # Imported here: commands on an SQLite database do without the PostgreSQL driver.
    from waypost.store.postgresql.cluster import status  # noqa: PLC0415

    try:
        db = where.open(readonly=True)
        try:
            nodes = status(db)
        except db.errors as exc:
            raise db.translate(exc) from None
        finally:
            db.close()
    except StoreError as exc:
        raise CommandError(f"cannot read the cluster from {where}: {exc}") from None
    if args.json:
        for node in nodes:
            print(json.dumps({
                "node": node.name, "run": node.run, "host": node.host, "pid": node.pid,
                "version": node.version, "state": node.state, "started_at": node.started_at,
                "heartbeat_age": round(node.heartbeat_age, 3), "leases": node.leases,
            }))  # fmt: skip
        return EXIT_OK
    print(f"{'NODE':<16} {'STATE':<8} {'HEARTBEAT':>9} {'LEASES':>7}  {'HOST':<20} {'PID':>7}  UP")
    now = time.time()
    for node in nodes:
        up = _duration(now - node.started_at) if node.state == "running" else "-"
        print(
            f"{node.name:<16} {node.state:<8} {_duration(node.heartbeat_age) + ' ago':>9} "
            f"{node.leases:>7}  {node.host:<20} {node.pid:>7}  {up}"
        )
    running = sum(1 for node in nodes if node.state == "running")
    print(f"-- {running} of {len(nodes)} nodes running")
    return EXIT_OK


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
