"""A private PostgreSQL server for tests and benchmarks: initdb in a temporary directory as an
unprivileged user, postgres on a free loopback port, stopped (or killed) by its PID; and a
streaming replica of it, for failover."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# The role the tests connect as (a superuser of the private cluster, trusted on loopback).
USER = "waypost"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One postgres process over a data directory of its own.

    initdb and postgres refuse to run as root: as root they run as `postgres` (Debian's
    package makes that user), in a directory it owns under /tmp (pytest's tmp_path is not
    traversable by other users)."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        found = pg_bin()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = found
        self.dir = Path(tempfile.mkdtemp(prefix="waypost-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "log"
        self.port = free_port()
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "200",
            "wal_level": "replica",
            "max_wal_senders": "5",
            **(settings or {}),
        }
        # As root, the programs run as `postgres`: set by Popen itself (not runuser, which
        # would stand between this process and the postmaster's signals).
        self.as_user: dict[str, object] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def initdb(cls, *, settings: dict[str, str] | None = None) -> PgServer:
        server = cls(settings=settings)
        server._run(
            "initdb", "-D", str(server.data), "-U", USER, "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        # Replication connections from loopback, for a replica made by pg_basebackup.
        hba = server.data / "pg_hba.conf"
        server._append(hba, f"host replication {USER} 127.0.0.1/32 trust\n")
        server.start()
        return server

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / program), *args], check=False, capture_output=True, **self.as_user
        )
        if done.returncode:
            raise RuntimeError(f"{program} failed: {done.stderr.decode(errors='replace')}")

    def _append(self, path: Path, text: str) -> None:
        # As root the file belongs to postgres; appending keeps its owner and mode.
        with path.open("a") as f:
            f.write(text)

    def start(self) -> None:
        options: list[str] = []
        for key, value in self.settings.items():
            options += ["-c", f"{key}={value}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data),
                 "-k", str(self.dir), "-p", str(self.port), *options],
                stdout=subprocess.DEVNULL, stderr=log, **self.as_user,
            )  # fmt: skip
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        ready = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while subprocess.run(ready, check=False).returncode:
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql; its output, unaligned, tuples only."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(dbname),
             "-c", sql],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new, empty database; its connection string."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def replica(self, *, synchronous: bool = True) -> PgServer:
        """A streaming replica of this server, started; with `synchronous` this server waits
        for it to have every commit durable before it answers the commit."""
        standby = PgServer(settings={**self.settings, "hot_standby": "on"})
        standby.data.parent.mkdir(exist_ok=True)
        standby._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
            "-D", str(standby.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
        )  # fmt: skip
        # The name the primary lists in synchronous_standby_names.
        conf = standby.data / "postgresql.auto.conf"
        standby._append(conf, "primary_conninfo = '" + self._conninfo("replica") + "'\n")
        standby.start()
        if synchronous:
            self.psql("ALTER SYSTEM SET synchronous_standby_names = 'replica'")
            self.psql("SELECT pg_reload_conf()")
        return standby

    def _conninfo(self, application_name: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} application_name={application_name}"

    def promote(self) -> None:
        """Make this replica a primary (`pg_ctl promote`), and wait until it takes writes."""
        self._run("pg_ctl", "promote", "-w", "-D", str(self.data))

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), by PID."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def kill(self) -> None:
        """The server dies at once, as in a power cut of its machine (SIGKILL to every
        postgres process: the postmaster and its children)."""
        if self.proc is None:
            return
        for pid in reversed(list(_tree(self.proc.pid))):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def server_ticks(self) -> int:
        """CPU ticks of the postgres processes alive now: the postmaster, its background
        processes (the WAL writer) and the backends."""
        total = 0
        if self.proc is None:
            return 0
        for pid in _tree(self.proc.pid):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # its own, not reaped children
        return total


def _tree(root: int) -> Iterator[int]:
    """The process and its descendants (the postmaster and its backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int(Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    todo = [root]
    while todo:
        pid = todo.pop()
        yield pid
        todo += children.get(pid, [])
