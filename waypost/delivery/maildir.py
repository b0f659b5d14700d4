"""Local delivery into Maildirs: written to tmp/, fsync'd, then renamed into new/.

A message is in a mailbox only once the rename is durable, so a crash never
leaves half a message in new/ — at worst a file in tmp/ that Maildir readers
ignore (removed at a later start, once 36 hours old), and a second delivery
(at-least-once).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from waypost import events
from waypost.address import POSTMASTER, AddressError, mailbox_name
from waypost.message import ContentType, Envelope


class LocalDeliveryError(Exception):
    """Delivery failed; `permanent` says whether trying again could help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where a message landed: the file, and the name of its mailbox directory."""

    path: str
    mailbox: str
    # The directory the file was renamed into ("" when nothing was written).
    directory: str = ""


MAX_KNOWN_MAILBOXES = 10_000
# A file left in tmp/ this long is a delivery a crash interrupted: the Maildir convention
# lets it be removed once it has not been accessed for 36 hours
# (https://cr.yp.to/proto/maildir.html, "What can I do with a maildir?").
STALE_TMP_SECONDS = 36 * 3600


class MaildirStore:
    """One Maildir per local part under `root`."""

    def __init__(
        self, root: Path, *, mailboxes: frozenset[str] = frozenset(), hostname: str = ""
    ) -> None:
        self.root = root
        self.mailboxes = frozenset(m.lower() for m in mailboxes)
        self.hostname = (
            (hostname or socket.gethostname()).replace("/", "\\057").replace(":", "\\072")
        )
        self._counter = itertools.count()
        # Mailboxes whose tmp/new/cur are known to exist (bounded by the local mailboxes).
        self._made: set[str] = set()
        removed = self.remove_stale_tmp_files()
        if removed:
            events.emit(events.MAILDIR_TMP_CLEANED, count=removed, root=str(root))

    def remove_stale_tmp_files(self, *, now: float | None = None) -> int:
        """Remove the files in each mailbox's tmp/ that nobody touched for 36 hours (what a
        crash in the middle of a delivery leaves behind); returns how many went. A file
        written or read since is kept: it may be a delivery in progress."""
        cutoff = (time.time() if now is None else now) - STALE_TMP_SECONDS
        removed = 0
        try:
            boxes = list(os.scandir(self.root))
        except OSError:
            return 0  # no root yet (nothing delivered), or unreadable: delivery will say
        for box in boxes:
            try:
                if not box.is_dir(follow_symlinks=False):
                    continue
                files = list(os.scandir(os.path.join(box.path, "tmp")))
            except OSError:
                continue
            for entry in files:
                try:
                    info = entry.stat(follow_symlinks=False)
                    if entry.is_file(follow_symlinks=False) and (
                        max(info.st_atime, info.st_mtime) < cutoff
                    ):
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    continue  # gone meanwhile, or not ours to remove: leave it
        return removed

    def mailbox_for(self, local_part: str) -> Path:
        """The Maildir of a local part; raises a permanent error for unknown or unsafe names."""
        # The same rule refuses such a recipient at RCPT (waypost.smtp.policy).
        try:
            name = mailbox_name(local_part)
        except AddressError:
            raise LocalDeliveryError(
                f"5.1.3 local part {local_part!r} cannot be a mailbox name", permanent=True
            ) from None
        # RFC 5321 §4.5.1: the postmaster always has a mailbox, listed or not.
        if self.mailboxes and name not in self.mailboxes and name != POSTMASTER:
            raise LocalDeliveryError(f"5.1.1 no such mailbox {local_part!r}", permanent=True)
        return self.root / name

    def deliver(
        self,
        local_part: str,
        recipient: str,
        envelope: Envelope,
        content: bytes,
        *,
        sync_dir: bool = True,
    ) -> Delivered:
        """Write one message into the mailbox of `local_part`; synchronous (run it in a thread).
        With `sync_dir` false the caller fsyncs `Delivered.directory` before it reports
        the delivery."""
        if envelope.content_type != ContentType.INTERNET:
            raise LocalDeliveryError(
                f"5.6.1 content type {envelope.content_type} cannot be delivered to a Maildir",
                permanent=True,
            )
        mailbox = self.mailbox_for(local_part)
        try:
            return self.write(
                mailbox, _with_delivery_headers(envelope, recipient, content), sync_dir=sync_dir
            )
        except OSError as exc:
            raise LocalDeliveryError(
                f"4.3.0 cannot write to {mailbox}: {exc.strerror or exc}", permanent=False
            ) from None

    def write(
        self, mailbox: str | Path, data: bytes, *, suffix: str = "", sync_dir: bool = True
    ) -> Delivered:
        """Write one file into `mailbox`'s new/, durably (raises OSError): the file is
        fsync'd, renamed into new/, and new/ fsync'd — unless `sync_dir` is false, when
        the caller must fsync `Delivered.directory` (see `sync_directories`) before it
        counts the file as delivered: many files renamed into one directory then cost
        one directory fsync."""
        # Plain strings: pathlib costs more than the write itself on this path.
        box = os.fspath(mailbox)
        if box not in self._made:
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(box, sub), mode=0o700, exist_ok=True)
            if len(self._made) >= MAX_KNOWN_MAILBOXES:
                self._made.clear()
            self._made.add(box)
        now = time.time()
        name = (
            f"{int(now)}.M{int(now % 1 * 1_000_000)}P{os.getpid()}Q{next(self._counter)}"
            f".{self.hostname}{suffix}"
        )
        tmp = f"{box}/tmp/{name}"
        new = f"{box}/new/{name}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            self._made.discard(box)  # removed under us: make it again next time
            raise
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, new)
        directory = f"{box}/new"
        if sync_dir:
            _fsync_dir(directory)
        return Delivered(path=new, mailbox=os.path.basename(box), directory=directory)


def sync_directories(directories: Iterable[str]) -> dict[str, OSError]:
    """fsync each directory once; the ones that failed, with their error."""
    failed: dict[str, OSError] = {}
    for directory in directories:
        try:
            _fsync_dir(directory)
        except OSError as exc:
            failed[directory] = exc
    return failed


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _with_delivery_headers(envelope: Envelope, recipient: str, content: bytes) -> bytes:
    """Return-Path and Delivered-To, as Postfix's local(8) adds them; lines end in LF."""
    head = f"Return-Path: <{envelope.originator}>\nDelivered-To: {recipient}\n".encode()
    return head + content.replace(b"\r\n", b"\n")
