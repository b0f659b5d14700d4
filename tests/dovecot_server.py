"""A private Dovecot LMTP server for tests: its own configuration, sockets and Maildirs in a
temporary directory, on a free loopback port and a UNIX socket, with a passwd-file of the
mailboxes it knows (any other recipient is refused at RCPT); stopped by its PID."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = Path("/usr/sbin/dovecot")


def installed() -> bool:
    return DOVECOT.exists() and Path("/usr/lib/dovecot/lmtp").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DovecotLmtp:
    """`dovecot -F` with only LMTP. As root (as in CI), mail is stored as `nobody`; as
    another user, as that user."""

    def __init__(self, users: tuple[str, ...] = ("ann", "bob")) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="waypost-dovecot-"))
        self.dir.chmod(0o755)
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        self.port = _free_port()
        self.socket = self.dir / "run" / "lmtp"
        root = os.geteuid() == 0
        owner = pwd.getpwnam("nobody") if root else pwd.getpwuid(os.geteuid())
        os.chown(self.mail, owner.pw_uid, owner.pw_gid)
        lines = [f"{name}::{owner.pw_uid}:{owner.pw_gid}::{self.mail / name}::" for name in users]
        (self.dir / "users").write_text("\n".join(lines) + "\n")
        me = pwd.getpwuid(os.geteuid()).pw_name
        unprivileged = "" if root else (
            f"default_internal_user = {me}\ndefault_login_user = {me}\n"
            f"default_internal_group = {owner.pw_name}\n"
        )  # fmt: skip
        (self.dir / "dovecot.conf").write_text(
            f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
info_log_path = {self.dir}/dovecot.log
protocols = lmtp
ssl = no
listen = 127.0.0.1
first_valid_uid = 1
# Mailboxes by their local part: ann@store.test is ann.
auth_username_format = %Ln
mail_location = maildir:~/Maildir
{unprivileged}
passdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
userdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@store.test
}}
"""
        )
        self.proc = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.dir / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "stderr").open("wb"),
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "stderr").read_text() + self.log()
                raise RuntimeError(f"dovecot did not start:\n{log}")
            time.sleep(0.1)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def messages(self, user: str) -> list[bytes]:
        """The messages in the user's INBOX (new and cur), oldest first."""
        found: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.mail / user / "Maildir" / sub
            if folder.is_dir():
                found += folder.iterdir()
        return [p.read_bytes() for p in sorted(found, key=lambda p: p.stat().st_mtime_ns)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
