"""Pickup: takes each complete file from the maildrop through the intake, at start, at
every poll interval and at once when `waypost-sendmail` asks; a file is deleted only once
its message is durable in the queue, and a bad one is moved to the quarantine directory.

Every file is untrusted: its owner (st_uid) says who submitted it, never its content.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from waypost import events
from waypost.arrival import Admit, Arrival, Source, UnroutableError
from waypost.local_submit.compose import compose
from waypost.local_submit.dropfile import COMPLETE_BIT, DropError, decode
from waypost.message import Message
from waypost.store.base import StoreError

# A file without its complete mark this old was abandoned by a submitter that stopped.
ABANDONED_AFTER = 3600.0
_REMEMBERED = 1000  # answers kept for a submitter that asks after a scan took its file


@dataclass(frozen=True, slots=True, kw_only=True)
class PickupSettings:
    maildrop: Path
    quarantine: Path
    hostname: str
    max_message_size: int
    max_recipients: int
    poll_interval: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one file: `queued` (with the id), `rejected`, `later`, `waiting`
    (not complete yet) or `gone` (no such file)."""

    status: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.status} {self.detail}".strip()


class _BadFileError(Exception):
    """The file cannot be taken: it goes to quarantine."""


class _IncompleteError(Exception):
    """The submitter is still writing the file."""


@dataclass(frozen=True, slots=True)
class _Drop:
    uid: int
    data: bytes


class Pickup:
    """The maildrop's one reader; files are taken one at a time, in name (time) order."""

    def __init__(self, settings: PickupSettings, admit: Admit) -> None:
        self.settings = settings
        self.admit = admit
        self._lock = asyncio.Lock()
        self._answers: OrderedDict[str, Outcome] = OrderedDict()
        self._stuck: set[str] = set()  # could not be deleted or moved: never taken twice
        self._scan_error = ""
        self._deferred: dict[str, str] = {}  # the last error of each file that waits
        self._stopping = False

    async def stop(self) -> None:
        """Let the file being taken finish (so it is not taken twice), and take no more."""
        self._stopping = True
        async with self._lock:
            pass

    async def run(self) -> None:
        """Scan now and then every poll interval, until cancelled."""
        while True:
            try:
                await self.scan()
            except Exception as exc:  # a fault here must not end pickup for good
                events.emit(events.UNEXPECTED_ERROR, component="pickup", error=repr(exc))
            await asyncio.sleep(self.settings.poll_interval)

    async def scan(self) -> None:
        try:
            names = await asyncio.to_thread(lambda: sorted(os.listdir(self.settings.maildrop)))
        except OSError as exc:
            error = f"cannot list {self.settings.maildrop}: {exc.strerror or exc}"
            if error != self._scan_error:  # once per new error, not once per poll
                events.emit(events.LOCAL_SUBMIT_UNAVAILABLE, what="pickup", error=error)
            self._scan_error = error
            return
        self._scan_error = ""
        for name in names:
            if self._stopping:
                return
            if name not in self._stuck:
                await self.take(name)

    async def take(self, name: str) -> Outcome:
        """Take one file, or say what became of it if it was taken already."""
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            return Outcome("gone")
        async with self._lock:
            if self._stopping:
                return Outcome("later", "the MTA is stopping")
            outcome = await self._take(name)
            if outcome.status == "gone":
                # Taken by a scan before its submitter asked: say what became of it.
                return self._answers.get(name, outcome)
            if outcome.status in ("queued", "rejected"):
                self._answers[name] = outcome
                while len(self._answers) > _REMEMBERED:
                    self._answers.popitem(last=False)
            return outcome

    async def _take(self, name: str) -> Outcome:
        settings = self.settings
        path = settings.maildrop / name
        uid: int | str = "?"
        try:
            drop = await asyncio.to_thread(self._read, path)
            uid = drop.uid
            # In a thread too: the user's name may come from a slow directory service.
            message = await asyncio.to_thread(self._compose, drop)
            queued = await self.admit(message, Arrival(source=Source.SUBMIT, peer=f"uid {uid}"))
        except FileNotFoundError:
            return Outcome("gone")
        except _IncompleteError:
            return Outcome("waiting")
        except (_BadFileError, DropError) as exc:
            return await self._quarantine(name, uid, str(exc))
        except UnroutableError as exc:
            return await self._quarantine(name, uid, f"no route for {exc}")
        except (StoreError, OSError) as exc:
            if self._deferred.get(name) != str(exc):  # once per new error, not once per poll
                events.emit(events.LOCAL_SUBMIT_DEFERRED, file=name, uid=uid, error=str(exc))
            self._deferred[name] = str(exc)
            return Outcome("later", str(exc))
        except Exception as exc:  # never let one file stop pickup
            return await self._quarantine(name, uid, f"unexpected error: {exc!r}")
        assert queued is not None  # a submission always has recipients to store
        self._deferred.pop(name, None)
        events.emit(
            events.LOCAL_SUBMIT_ACCEPTED,
            message_id=queued.message_id,
            mts_id=message.envelope.mts_id,
            originator=message.envelope.originator or "<>",
            uid=uid,
            recipients=queued.recipients,
            size=len(message.content),
        )
        try:
            await asyncio.to_thread(path.unlink)
        except OSError as exc:
            # Queued and durable: taking the file again would deliver it twice.
            self._stuck.add(name)
            events.emit(
                events.LOCAL_SUBMIT_UNAVAILABLE,
                what="pickup",
                error=f"message {queued.message_id} is queued but {path} cannot be "
                f"deleted ({exc.strerror or exc}); remove it by hand",
            )
        return Outcome("queued", str(queued.message_id))

    def _compose(self, drop: _Drop) -> Message:
        settings = self.settings
        envelope, content = decode(
            drop.data,
            max_content=settings.max_message_size,
            max_recipients=settings.max_recipients,
        )
        message = compose(
            envelope, content, uid=drop.uid, login=_login(drop.uid), hostname=settings.hostname
        )
        if len(message.envelope.recipients) > settings.max_recipients:
            raise DropError(f"more than {settings.max_recipients} recipients")
        return message

    def _read(self, path: Path) -> _Drop:
        """The file's owner and bytes; only a complete, regular, singly linked file."""
        try:
            # O_NONBLOCK: a FIFO someone made there must not stop pickup.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise _BadFileError(f"cannot be opened: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _BadFileError("not a regular file")
            if st.st_nlink != 1:
                # A hard link to another file would submit that file as its owner.
                raise _BadFileError(f"has {st.st_nlink} links")
            if not st.st_mode & COMPLETE_BIT:
                if time.time() - st.st_mtime < ABANDONED_AFTER:
                    raise _IncompleteError
                raise _BadFileError("never completed: its writer stopped before marking it done")
            limit = self.settings.max_message_size + 2 * 1024 * 1024
            if st.st_size > limit:
                raise _BadFileError(f"{st.st_size} bytes is over the limit of {limit}")
            chunks: list[bytes] = []
            size = 0
            while chunk := os.read(fd, 1 << 20):
                size += len(chunk)
                if size > limit:
                    raise _BadFileError(f"grew over the limit of {limit} bytes while read")
                chunks.append(chunk)
            return _Drop(st.st_uid, b"".join(chunks))
        finally:
            os.close(fd)

    async def _quarantine(self, name: str, uid: int | str, reason: str) -> Outcome:
        target = self.settings.quarantine / name
        try:
            await asyncio.to_thread(_move_aside, self.settings.maildrop / name, target)
        except FileNotFoundError:
            return Outcome("gone")
        except OSError as exc:
            self._stuck.add(name)
            reason += f" (and it cannot be moved to {target}: {exc.strerror or exc})"
            target = self.settings.maildrop / name
        events.emit(events.LOCAL_SUBMIT_QUARANTINED, file=name, uid=uid, path=target, reason=reason)
        return Outcome("rejected", reason)


def _move_aside(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if target.exists():
            target = target.with_name(f"{target.name}.{time.time_ns()}")
    os.rename(source, target)


def _login(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"  # a user without a passwd entry still has a sender
