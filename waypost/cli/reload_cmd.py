"""`waypost reload`: ask the running MTA to reload its configuration (SIGHUP), as
`postfix reload` does; the pid comes from the locked pid file in the data directory."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

from waypost import service
from waypost.cli.common import CommandError, add_config_option, load


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "reload",
        help="reload the running MTA's configuration",
        description="Send SIGHUP to the Waypost serving the configuration's data directory: "
        "it reads its configuration file again (and reopens its log file). The outcome is "
        "logged: event 1110 (reloaded), 1111 (refused, the old configuration stays), "
        "1112 (a key that needs a restart).",
    )
    add_config_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    data_dir = Path(config.server.data_dir)
    pid_file = data_dir / "waypost.pid"
    try:
        pid = service.running_pid(data_dir)
    except OSError as exc:
        raise CommandError(
            f"cannot read {pid_file}: {exc.strerror or exc} "
            "(run as the user Waypost runs as, or as root)"
        ) from None
    if pid is None:
        raise CommandError(f"Waypost is not running (no running instance holds {pid_file})")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise CommandError(f"Waypost is not running (pid {pid} of {pid_file} is gone)") from None
    except PermissionError:
        raise CommandError(
            f"not allowed to signal pid {pid} (run as the user Waypost runs as, or as root)"
        ) from None
    print(f"waypost: reload requested (SIGHUP sent to pid {pid}); the log says how it went")
    return 0
