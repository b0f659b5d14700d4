"""`waypost reload`: ask the running MTA to reload its configuration (SIGHUP), as
`postfix reload` does; the pid comes from the locked pid file in the data directory."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from waypost.cli.common import add_config_option, load
from waypost.cli.mta_signal import signal_mta


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
    pid = signal_mta(load(args), signal.SIGHUP)
    print(f"waypost: reload requested (SIGHUP sent to pid {pid}); the log says how it went")
    return 0
