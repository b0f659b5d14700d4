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
  141 standard output was closed by its reader (`waypost queue list | head`): the
      status a Unix tool killed by SIGPIPE has (128 + 13), without a message
No verb ever ends with a Python traceback: an unexpected error is reported on
one line (and as event 1003) with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
from collections.abc import Iterator, Sequence

from waypost import __version__, events
from waypost.cli import (
    check_cmd,
    cluster_cmd,
    config_cmd,
    events_cmd,
    mailbox_cmd,
    migrate_cmd,
    password_cmd,
    queue_cmd,
    reload_cmd,
    route_cmd,
    serve_cmd,
    submit_cmd,
    track_cmd,
)
from waypost.cli.common import EXIT_CONFIG, CommandError
from waypost.config import ConfigError

VERBS = (
    serve_cmd,
    reload_cmd,
    check_cmd,
    migrate_cmd,
    cluster_cmd,
    submit_cmd,
    queue_cmd,
    track_cmd,
    mailbox_cmd,
    route_cmd,
    events_cmd,
    config_cmd,
    password_cmd,
)


# A reader that went away (`| head`): the status of a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

# The -c of a verb when none was given after the verb (so one given before it counts).
_UNSET = object()


class _Parser(argparse.ArgumentParser):
    """The top-level parser: settles which -c applies once the verb's options are read."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        _resolve_config(parsed)
        return parsed, rest


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="waypost",
        description="Waypost: an X.400 and SMTP message transfer agent.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 repaired, 4 database unusable, "
        "75 already running, 76 database unusable at start-up, 78 bad configuration, "
        "141 output closed by its reader.",
    )
    parser.add_argument("--version", action="version", version=f"waypost {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        dest="config_before_verb",
        metavar="FILE",
        default=None,
        help="configuration file, for every command (also accepted after the command)",
    )
    verbs = parser.add_subparsers(
        dest="verb", metavar="COMMAND", required=True, parser_class=argparse.ArgumentParser
    )
    for verb in VERBS:
        verb.add_parser(verbs)
    for leaf in _parsers(parser):
        for action in leaf._actions:
            if action.dest == "config":
                # argparse lets a subcommand's default overwrite what the main parser
                # read, so the verb's own default is kept aside and applied afterwards.
                leaf.set_defaults(config=_UNSET, config_default=action.default)
    return parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below `parser`: the verbs and their actions."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _parsers(sub)


def _resolve_config(args: argparse.Namespace) -> None:
    """`-c` after the verb wins, then `-c` before it, then the verb's default."""
    if getattr(args, "config", None) is _UNSET:
        before = getattr(args, "config_before_verb", None)
        args.config = before if before is not None else args.config_default


def _stdout_closed() -> bool:
    """Whether standard output is a pipe or socket whose reader has gone (POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))
    except (OSError, ValueError):
        return False


def _quiet_exit_on_broken_pipe() -> int:
    """What `cat` does when its reader stops reading: stop, say nothing. Standard output
    is pointed at /dev/null so that the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Operators of the command line see warnings and errors; `serve` sets its own level.
    events.configure_logging(level="WARNING")
    try:
        code: int = args.run(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, where a closed pipe is still ours to handle
    except BrokenPipeError as exc:
        if _stdout_closed():
            return _quiet_exit_on_broken_pipe()
        return _unexpected(args, exc)
    except ConfigError as exc:
        print(f"waypost: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CommandError as exc:
        print(f"waypost {args.verb}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _unexpected(args, exc)
    return code


def _unexpected(args: argparse.Namespace, exc: Exception) -> int:
    events.emit(events.UNEXPECTED_ERROR, component=f"waypost {args.verb}", error=repr(exc))
    print(f"waypost {args.verb}: unexpected error: {exc!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
