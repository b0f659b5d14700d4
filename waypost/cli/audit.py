"""The audit trail of operators' queue actions: who ran what on which messages, as event
1403 in the event log the MTA writes (`[log] json_file`), like Postfix's postsuper logs."""

from __future__ import annotations

import atexit
import os
import pwd
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from waypost import events
from waypost.config import Config
from waypost.tracking.journal import Journal
from waypost.tracking.recorder import record_into


def operator() -> tuple[int, str]:
    """The real uid running the command and its user name; under sudo, also who asked."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)  # a uid without a passwd entry (a container)
    sudo_user = os.environ.get("SUDO_USER")
    if uid == 0 and sudo_user:
        name += f" (sudo by {sudo_user})"
    return uid, name


def start(config: Config, verb: str) -> None:
    """Send this command's events where the MTA's go (the event log and the tracking
    journal); say so if the log cannot be written."""
    track(config)
    json_file = config.log.json_file or None
    created = json_file is not None and not os.path.exists(json_file)
    failure = events.configure_command_logging(level=config.log.level, json_file=json_file)
    if failure is not None:
        reason = failure.strerror or str(failure)
        print(
            f"waypost {verb}: cannot write the event log {json_file}: {reason}; "
            "the action is logged on this terminal only",
            file=sys.stderr,
        )
    elif created and json_file is not None and os.geteuid() == 0:
        _give_to_directory_owner(Path(json_file))


def _give_to_directory_owner(path: Path) -> None:
    """A log root created is handed to its directory's owner: the MTA, running as its own
    user, must still be able to append to it."""
    try:
        owner = path.parent.stat()
        os.chown(path, owner.st_uid, owner.st_gid)
    except OSError:
        pass  # the MTA names the path itself if it cannot open the file


def record(action: str, message_ids: Sequence[int] | None, count: int) -> None:
    """Event 1403 for one action: `message_ids` None is the whole queue."""
    uid, user = operator()
    ids = "all" if message_ids is None else ",".join(map(str, message_ids))
    events.emit(events.QUEUE_ADMIN, user=user, uid=uid, action=action, ids=ids, count=count)


def track(config: Config) -> None:
    """Record this command's steps of messages' lives (an operator's action, a message
    submitted) in the tracking journal the MTA keeps, written when the command ends. A
    journal that cannot be opened costs those records, not the command."""
    if not config.tracking.enabled or not Path(config.server.data_dir).is_dir():
        return
    path = Path(config.tracking.path)
    created = not path.exists()
    try:
        journal = Journal(path, retention=None)
    except (OSError, sqlite3.Error) as exc:
        print(f"waypost: the tracking journal {path} cannot be used: {exc}", file=sys.stderr)
        return
    if created and os.geteuid() == 0:
        _give_to_directory_owner(path)
    stop = record_into(journal)

    def close() -> None:
        stop()
        journal.close()

    atexit.register(close)
