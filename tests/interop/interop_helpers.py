"""Helpers for the interop tests: a `waypost serve` subprocess, smtp-sink, raw SMTP, swaks."""

from __future__ import annotations

import email
import email.message
import email.policy
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
SWAKS = "/usr/bin/swaks"
HOSTNAME = "mx.test"
# Waypost's own trace field, as opposed to smtp-sink's "(smtp-sink)" one.
WAYPOST_RECEIVED = f"by {HOSTNAME} (Waypost) with"


# --- tools -----------------------------------------------------------------------------


def require_tool(path: str) -> str:
    """The tool's path; skips the test (a failure in CI) when it is not installed."""
    found = path if os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        pytest.skip(f"{path} is not installed (scripts/install-system-tools.sh installs it)")
    return found


def require_swaks_tls() -> str:
    """swaks with TLS support (it needs Perl's Net::SSLeay, package libnet-ssleay-perl)."""
    swaks = require_tool(SWAKS)
    support = subprocess.run(
        [swaks, "--support"], capture_output=True, text=True, timeout=30, check=False
    )
    if "TLS supported" not in support.stdout + support.stderr:
        pytest.skip("swaks has no TLS support: install libnet-ssleay-perl")
    return swaks


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def greeting(port: int, timeout: float = 2.0) -> bytes:
    """The first line a server on the port sends, or b"" when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return b""


# --- a raw SMTP client ---------------------------------------------------------------


class RawSmtp:
    """Bytes in, replies out: for what smtplib will not send (smuggling, long lines)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str | bytes) -> tuple[int, str]:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def reply(self) -> tuple[int, str]:
        """One whole (possibly multi-line) reply: its code and its text lines joined."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        code = int(lines[-1][:3])
        return code, "\n".join(ln[4:].decode() for ln in lines)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; unanswered: {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (EOF) within `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSmtp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Waypost ---------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


class Waypost:
    """One `waypost serve` subprocess with its own configuration and data directory.

    `settings` is merged into the defaults section by section (`{"smtp":
    {"max_recipients": 3}}`); `routes` are (match, next_hop) pairs; `extra` is raw
    TOML appended at the end.
    """

    def __init__(
        self,
        root: Path,
        *,
        settings: dict[str, dict[str, Any]] | None = None,
        routes: list[tuple[str, str]] | None = None,
        extra: str = "",
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.data = root / "data"
        self.port = free_port()
        self.config = root / "waypost.toml"
        self.log_path = root / "serve.stderr"
        sections: dict[str, dict[str, Any]] = {
            "server": {"hostname": HOSTNAME, "data_dir": str(self.data)},
            "queue": {"poll_interval": 0.2, "min_backoff": 1, "max_backoff": 2},
            "smtp": {"listen": [f"127.0.0.1:{self.port}"]},
            "smtp_client": {
                "connect_timeout": 5,
                "command_timeout": 10,
                "data_timeout": 10,
            },
            "x400": {"listen": []},
        }
        for name, values in (settings or {}).items():
            sections.setdefault(name, {}).update(values)
        text = []
        for name, values in sections.items():
            text.append(f"[{name}]")
            text += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
            text.append("")
        for match, next_hop in routes or []:
            text += [
                "[[route]]",
                f"match = {_toml_value(match)}",
                f"next_hop = {_toml_value(next_hop)}",
                "",
            ]
        self.config.write_text("\n".join(text) + extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # -- life cycle --

    def start(self, timeout: float = 15.0) -> Waypost:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(self.config)],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, "WAYPOST_CONFIG": ""},
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"waypost serve exited with {self.proc.returncode}:\n{self.stderr}"
                )
            if greeting(self.port, timeout=1.0).startswith(b"220 "):
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"waypost serve did not answer 220 in time:\n{self.stderr}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM; the run must end with exit code 0 and no traceback."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                raise AssertionError(f"waypost serve ignored SIGTERM:\n{self.stderr}") from None
        self._log.close()
        assert proc.returncode == 0, f"waypost serve exited with {proc.returncode}:\n{self.stderr}"
        assert "Traceback" not in self.stderr, self.stderr

    # -- what it did --

    @property
    def stderr(self) -> str:
        """Everything `waypost serve` wrote (its events, one per line)."""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, event_id: int) -> list[str]:
        """The lines of event `event_id` (`... WARNING 1706 smtp: ...`)."""
        tag = f" {event_id} "
        return [line for line in self.stderr.splitlines() if tag in line]

    def wait_event(self, event_id: int, timeout: float = 10.0) -> list[str]:
        return wait_for(lambda: self.events(event_id), timeout, f"event {event_id}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "waypost.cli.main", *args, "-c", str(self.config)],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "WAYPOST_CONFIG": ""},
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def queue_list(self, *args: str) -> str:
        """`waypost queue list` (its standard output); it must succeed."""
        result = self.cli("queue", "list", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def queue_rows(self) -> list[tuple[Any, ...]]:
        """(message_id, address, state, last_error) of every recipient, read directly (fast,
        for polling; `queue_list()` is the operator's view)."""
        db = self.data / "mta.db"
        if not db.exists():
            return []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return list(
                conn.execute(
                    "SELECT message_id, address, state, last_error FROM recipients "
                    "ORDER BY message_id, rcpt_index"
                )
            )
        finally:
            conn.close()

    def wait_queue_empty(self, timeout: float = 15.0) -> None:
        wait_for(lambda: not self.queue_rows(), timeout, "an empty queue")
        assert "-- 0 recipients" in self.queue_list()

    def maildir(self, user: str) -> list[Path]:
        """The files in data/maildir/USER/new, oldest name first."""
        new = self.data / "maildir" / user / "new"
        return sorted(new.iterdir()) if new.is_dir() else []

    def all_maildir_files(self) -> list[Path]:
        root = self.data / "maildir"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []

    def message(self, path: Path) -> email.message.EmailMessage:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


# --- smtp-sink -------------------------------------------------------------------------


def stop_all(started: list[Waypost]) -> None:
    """Stop every process, then fail with what each stop found wrong (a traceback in its
    log, an unclean exit), so that one bad stop does not leave the others running."""
    errors = []
    for wp in started:
        try:
            wp.stop()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)


@dataclass
class Dump:
    """One transaction smtp-sink dumped: its envelope and, if DATA got that far, the message
    as it arrived (`complete` is False for a transaction that never reached the message)."""

    path: Path
    mail_args: str
    rcpt_args: list[str]
    content: bytes
    complete: bool
    headers: dict[str, list[str]] = field(default_factory=dict)

    def message(self) -> email.message.EmailMessage:
        assert self.complete, f"{self.path}: no message in this transaction"
        msg = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


def parse_dump(path: Path) -> Dump:
    """smtp-sink's dump: X-… records, its own three-line Received field, the message, and an
    empty line it appends (see smtp-sink(1), DUMP FILE FORMAT). A transaction refused before
    DATA leaves only the X-… records."""
    lines = path.read_bytes().split(b"\n")
    headers: dict[str, list[str]] = {}
    i = 0
    while i < len(lines) and lines[i] and not lines[i].startswith(b"Received: "):
        name, _, value = lines[i].decode(errors="replace").partition(": ")
        headers.setdefault(name, []).append(value)
        i += 1
    complete = i + 1 < len(lines) and b"(smtp-sink)" in lines[i + 1]
    body = lines[i + 3 :] if complete else []
    if body and body[-1] == b"":
        body = body[:-1]  # the split after the last newline
    if body and body[-1] == b"":
        body = body[:-1]  # the empty line smtp-sink appends
    return Dump(
        path=path,
        mail_args=headers.get("X-Mail-Args", [""])[0],
        rcpt_args=headers.get("X-Rcpt-Args", []),
        content=b"\r\n".join(body) + b"\r\n" if complete else b"",
        complete=complete,
        headers=headers,
    )


class SmtpSink:
    """`smtp-sink -d DIR/%M. [options] 127.0.0.1:PORT 100`, stopped by its PID."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = require_tool(SMTP_SINK)
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory.parent / f"{directory.name}.log"

    @property
    def next_hop(self) -> str:
        return f"smtp:[127.0.0.1]:{self.port}"

    def start(self, *options: str, dump_dir: Path | None = None) -> SmtpSink:
        """Start (again) with these options; dumps go to `dump_dir` (default: the first)."""
        assert self.proc is None, "already running"
        target = dump_dir or self.dir
        target.mkdir(parents=True, exist_ok=True)
        user = ["-u", pwd.getpwuid(os.getuid()).pw_name] if os.geteuid() == 0 else []
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                *user,
                "-d",
                f"{target}/%M.",
                *options,
                f"127.0.0.1:{self.port}",
                "100",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 10
        while not listening(self.port):  # not a greeting: -W CONNECT:N delays it
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise AssertionError(f"smtp-sink exited with {code}: {self.log_path.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("smtp-sink did not listen in time")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()  # by PID
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def files(self, directory: Path | None = None) -> list[Path]:
        d = directory or self.dir
        return sorted((p for p in d.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)

    def dumps(self, directory: Path | None = None) -> list[Dump]:
        """The transactions dumped so far; read them once Waypost has had the 250 reply."""
        return [parse_dump(p) for p in self.files(directory)]

    def messages(self, directory: Path | None = None) -> list[Dump]:
        """The dumped transactions that carried a message."""
        return [d for d in self.dumps(directory) if d.complete]


# --- TLS and AUTH material -------------------------------------------------------------


def users_file(path: Path, users: dict[str, str]) -> Path:
    """An smtp.auth_users file: `user:hash` lines from waypost.smtp.auth.hash_password."""
    from waypost.smtp.auth import hash_password  # noqa: PLC0415 - the project under test

    path.write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in users.items()))
    return path


# --- clients ---------------------------------------------------------------------------


def swaks(port: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run swaks against 127.0.0.1:PORT; its transcript is in stdout."""
    binary = require_tool(SWAKS)
    return subprocess.run(
        [binary, "--server", f"127.0.0.1:{port}", "--helo", "client.test", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def waypost_received(msg: email.message.EmailMessage) -> list[str]:
    """The Received fields Waypost (hostname mx.test) added."""
    return [str(v) for v in msg.get_all("Received", []) if WAYPOST_RECEIVED in str(v)]
