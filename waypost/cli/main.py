"""The `waypost` command: parses arguments, loads the configuration, runs one verb.

Exit codes (every verb):
  0   success
  1   what was asked failed (a problem found, a message refused, an object not found)
  2   bad command-line usage
  3   `check --repair` found problems and repaired them; the database now checks clean
  4   `check`: the database file is unusable (see docs/operations.md)
  75  `serve`: another Waypost is already using the data directory
  76  `serve`: the MTA database cannot be used
  78  the configuration file is invalid (the message names the key and the reason)
No verb ever ends with a Python traceback: an unexpected error is reported on
one line (and as event 1003) with exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from waypost import __version__, events
from waypost.cli import (
    check_cmd,
    config_cmd,
    events_cmd,
    password_cmd,
    queue_cmd,
    reload_cmd,
    route_cmd,
    serve_cmd,
    submit_cmd,
)
from waypost.cli.common import EXIT_CONFIG, CommandError
from waypost.config import ConfigError

VERBS = (
    serve_cmd,
    reload_cmd,
    check_cmd,
    submit_cmd,
    queue_cmd,
    route_cmd,
    events_cmd,
    config_cmd,
    password_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waypost",
        description="Waypost: an X.400 and SMTP message transfer agent.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 repaired, 4 database unusable, "
        "75 already running, 76 database unusable at start-up, 78 bad configuration.",
    )
    parser.add_argument("--version", action="version", version=f"waypost {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for verb in VERBS:
        verb.add_parser(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Operators of the command line see warnings and errors; `serve` sets its own level.
    events.configure_logging(level="WARNING")
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"waypost: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CommandError as exc:
        print(f"waypost {args.verb}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        events.emit(events.UNEXPECTED_ERROR, component=f"waypost {args.verb}", error=repr(exc))
        print(f"waypost {args.verb}: unexpected error: {exc!r}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
