"""Signalling the running MTA, found by the locked pid file in its data directory:
SIGHUP to reload (`waypost reload`), SIGUSR1 to try due mail now (`waypost queue retry`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from waypost import service
from waypost.cli.common import CommandError
from waypost.config import Config

RUN_AS = "(run as the user Waypost runs as, or as root)"


def signal_mta(config: Config, sig: signal.Signals, *, required: bool = True) -> int | None:
    """Send `sig` to the Waypost serving the configuration's data directory; its pid. When
    none runs: CommandError, or None if not `required`."""
    data_dir = Path(config.server.data_dir)
    pid_file = data_dir / "waypost.pid"
    try:
        pid = service.running_pid(data_dir)
    except OSError as exc:
        raise CommandError(f"cannot read {pid_file}: {exc.strerror or exc} {RUN_AS}") from None
    try:
        if pid is None:
            raise ProcessLookupError
        os.kill(pid, sig)
    except ProcessLookupError:
        if not required:
            return None
        gone = (
            f"pid {pid} of {pid_file} is gone" if pid else f"no running instance holds {pid_file}"
        )
        raise CommandError(f"Waypost is not running ({gone})") from None
    except PermissionError:
        raise CommandError(f"not allowed to signal pid {pid} {RUN_AS}") from None
    return pid
