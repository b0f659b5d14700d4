"""The cluster's members in the `nodes` table: joining, heartbeats, leaving, and taking over
the leases of a node that went silent. Synchronous, on one connection, inside the caller's
transaction.

Times of heartbeats are the database server's (`clock_timestamp()`), so that no node's
clock decides whether another is lost. A node's leases name its run (`nodes.run`), which is
the lease owner its queue manager claims as."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from waypost.store.base import StoreError
from waypost.store.database import Database

_NOW = "extract(epoch FROM clock_timestamp())"

RUNNING = "running"
STOPPED = "stopped"
LOST = "lost"


@dataclass(frozen=True, slots=True)
class Member:
    """This process as a member of the cluster."""

    name: str
    run: str
    host: str
    pid: int
    version: str


@dataclass(frozen=True, slots=True)
class Joined:
    """What joining found: the leases of this node's previous run handed back, and how many
    nodes run now."""

    released: int
    running: int


@dataclass(frozen=True, slots=True)
class TakenOver:
    """A silent node declared lost, and its leases queued again."""

    name: str
    run: str
    silent: float
    count: int


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One row of `waypost cluster status`."""

    name: str
    run: str
    host: str
    pid: int
    version: str
    started_at: float
    heartbeat_age: float
    state: str
    leases: int


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(db: Database, run: str, now: float) -> int:
    """Queue again every recipient leased by `run`."""
    cur = db.conn.execute(
        "UPDATE recipients SET state = 'queued', due_at = ?, lease_owner = NULL, "
        "updated_at = ? WHERE state = 'leased' AND lease_owner = ?",
        (now, now, run),
    )
    return int(cur.rowcount)


def join(db: Database, member: Member, now: float, timeout: float) -> Joined:
    """Register this run under the node's name, handing back the leases of the node's
    previous run (it crashed, or stopped without a word). A node of the same name that is
    alive — its heartbeat fresh, and not a dead process of this host — is refused."""
    row = db.conn.execute(
        f"SELECT run, host, pid, state, {_NOW} - heartbeat_at FROM nodes WHERE name = ? FOR UPDATE",
        (member.name,),
    ).fetchone()
    released = 0
    if row is not None:
        run, host, pid, state, age = row
        same_host_dead = host == member.host and not _pid_alive(int(pid))
        if state == RUNNING and age < timeout and not same_host_dead:
            raise StoreError(
                f"node {member.name!r} is running already on {host} (pid {pid}, heartbeat "
                f"{age:.0f}s ago): give this one another name ([cluster] node)"
            )
        released = _release(db, str(run), now)
    db.conn.execute(
        "INSERT INTO nodes (name, run, host, pid, version, started_at, heartbeat_at, state) "
        f"VALUES (?, ?, ?, ?, ?, {_NOW}, {_NOW}, ?) ON CONFLICT (name) DO UPDATE SET "
        "run = excluded.run, host = excluded.host, pid = excluded.pid, "
        "version = excluded.version, started_at = excluded.started_at, "
        "heartbeat_at = excluded.heartbeat_at, state = excluded.state",
        (member.name, member.run, member.host, member.pid, member.version, RUNNING),
    )
    running = db.conn.execute("SELECT count(*) FROM nodes WHERE state = ?", (RUNNING,))
    return Joined(released=released, running=int(running.fetchone()[0]))


def heartbeat(db: Database, member: Member) -> bool:
    """Say this node is alive; False when the cluster had declared it lost (its leases were
    taken over), in which case it is registered as running again."""
    beat = db.conn.execute(
        f"UPDATE nodes SET heartbeat_at = {_NOW} WHERE name = ? AND run = ? AND state = ?",
        (member.name, member.run, RUNNING),
    )
    if beat.rowcount:
        return True
    db.conn.execute(
        "INSERT INTO nodes (name, run, host, pid, version, started_at, heartbeat_at, state) "
        f"VALUES (?, ?, ?, ?, ?, {_NOW}, {_NOW}, ?) ON CONFLICT (name) DO UPDATE SET "
        "run = excluded.run, heartbeat_at = excluded.heartbeat_at, state = excluded.state",
        (member.name, member.run, member.host, member.pid, member.version, RUNNING),
    )
    return False


def take_over(db: Database, member: Member, now: float, timeout: float) -> list[TakenOver]:
    """Declare lost every other running node silent for longer than `timeout`, and queue
    its leases again. A node another member is declaring lost at the same time is skipped
    (its row is locked): each is taken over once."""
    silent = db.conn.execute(
        f"SELECT name, run, {_NOW} - heartbeat_at FROM nodes WHERE state = ? AND name <> ? "
        f"AND heartbeat_at < {_NOW} - ? FOR UPDATE SKIP LOCKED",
        (RUNNING, member.name, timeout),
    ).fetchall()
    taken: list[TakenOver] = []
    for name, run, age in silent:
        db.conn.execute("UPDATE nodes SET state = ? WHERE name = ?", (LOST, name))
        taken.append(TakenOver(str(name), str(run), float(age), _release(db, str(run), now)))
    return taken


def leave(db: Database, member: Member, now: float) -> int:
    """Hand back this run's leases and mark the node stopped; how many were handed back."""
    released = _release(db, member.run, now)
    db.conn.execute(
        "UPDATE nodes SET state = ?, heartbeat_at = " + _NOW + " WHERE name = ? AND run = ?",
        (STOPPED, member.name, member.run),
    )
    return released


def status(db: Database) -> list[NodeStatus]:
    """Every node the cluster has known, with its heartbeat's age and its leases."""
    rows = db.conn.execute(
        "SELECT n.name, n.run, n.host, n.pid, n.version, n.started_at, "
        f"{_NOW} - n.heartbeat_at, n.state, (SELECT count(*) FROM recipients AS r "
        "WHERE r.state = 'leased' AND r.lease_owner = n.run) FROM nodes AS n ORDER BY n.name"
    ).fetchall()
    return [
        NodeStatus(
            str(name),
            str(run),
            str(host),
            int(pid),
            str(version),
            float(started),
            float(age),
            str(state),
            int(leases),
        )
        for name, run, host, pid, version, started, age, state, leases in rows
    ]


def new_member(name: str, version: str) -> Member:
    """This process as the node `name` (the host's name when empty), with a run of its own."""
    host = socket.gethostname()
    name = name or host
    run = f"{name}:{os.getpid()}:{os.urandom(3).hex()}"
    return Member(name=name, run=run, host=host, pid=os.getpid(), version=version)
