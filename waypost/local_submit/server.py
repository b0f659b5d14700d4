"""The MTA's side of local submission: the maildrop and public directories, pickup, and
the two sockets anyone may use — `pickup` (a file was dropped: take it now and answer)
and `showq` (the queue listing for `mailq`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from waypost import events
from waypost.arrival import Admit
from waypost.local_submit.dropfile import (
    MAILDROP_MODE,
    PICKUP_SOCKET,
    PUBLIC_MODE,
    SHOWQ_SOCKET,
    SOCKET_MODE,
)
from waypost.local_submit.pickup import Pickup, PickupSettings
from waypost.local_submit.showq import read_listing
from waypost.store.location import DatabaseLocation

_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ASK_TIMEOUT = 10.0  # a submitter that connects and says nothing
MAX_NAME = 255
# sockaddr_un's sun_path: 108 bytes on Linux, with the terminating NUL.
MAX_SOCKET_PATH = 107


class LocalSubmission:
    """Pickup and the sockets, started with the MTA and stopped with it."""

    def __init__(
        self, settings: PickupSettings, public: Path, database: DatabaseLocation, admit: Admit
    ) -> None:
        self.settings = settings
        self.public = public
        self.database = database
        self.pickup = Pickup(settings, admit)
        self._servers: list[asyncio.AbstractServer] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Prepare the directories and sockets; what fails is an event, and what can run
        runs (without the sockets, pickup still scans the maildrop)."""
        try:
            _directory(self.settings.maildrop, MAILDROP_MODE)
            _directory(self.settings.quarantine, 0o700)
        except OSError as exc:
            events.emit(events.LOCAL_SUBMIT_UNAVAILABLE, what="the maildrop", error=_text(exc))
            return
        self._task = asyncio.create_task(self.pickup.run())
        try:
            _directory(self.public, PUBLIC_MODE)
        except OSError as exc:
            events.emit(events.LOCAL_SUBMIT_UNAVAILABLE, what="the sockets", error=_text(exc))
            return
        for name, handler in ((PICKUP_SOCKET, self._on_pickup), (SHOWQ_SOCKET, self._on_showq)):
            path = self.public / name
            try:
                self._servers.append(await _listen(path, handler))
            except OSError as exc:
                events.emit(
                    events.LOCAL_SUBMIT_UNAVAILABLE, what=f"socket {path}", error=_text(exc)
                )

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        for name in (PICKUP_SOCKET, SHOWQ_SOCKET):
            # Gone with the MTA: `mailq` and `waypost-sendmail` then see it is not running.
            with contextlib.suppress(OSError):
                (self.public / name).unlink()
        await self.pickup.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _on_pickup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One line, a file's name: the answer is what became of it."""
        try:
            line = await asyncio.wait_for(reader.readline(), ASK_TIMEOUT)
            name = line.rstrip(b"\r\n").decode("utf-8", "replace")[:MAX_NAME]
            outcome = await self.pickup.take(name)
            writer.write(outcome.line().encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, ValueError):
            pass  # the submitter went away; its file is taken all the same
        finally:
            writer.close()

    async def _on_showq(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                text = await asyncio.to_thread(read_listing, self.database)
            except Exception as exc:  # a damaged row must not stop the MTA
                text = f"waypost: cannot read the queue: {exc}\n"
            writer.write(text.encode("utf-8", "replace"))
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


def _directory(path: Path, mode: int) -> None:
    """A real directory of this user's, with exactly `mode` (umask does not apply)."""
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(0, "not a directory", str(path))
    if st.st_uid != os.geteuid():
        raise PermissionError(0, f"owned by uid {st.st_uid}, not this MTA's", str(path))
    if stat.S_IMODE(st.st_mode) != mode:
        path.chmod(mode)


async def _listen(path: Path, handler: _Handler) -> asyncio.AbstractServer:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise OSError(0, f"the path is longer than {MAX_SOCKET_PATH} bytes", str(path))
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()  # left by a run that stopped; the run lock says none is running
    server = await asyncio.start_unix_server(handler, path)
    path.chmod(SOCKET_MODE)
    return server


def _text(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"
