"""What the verbs share: the -c/--config option, loading the configuration, errors."""

from __future__ import annotations

import argparse
import os
import time

from waypost.config import Config, load_config
from waypost.store.validate import is_number

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 78


class CommandError(Exception):
    """A verb could not do what was asked; the message is for the operator."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("WAYPOST_CONFIG") or None,  # set but empty: not set
        help="configuration file (default: $WAYPOST_CONFIG, else the embedded defaults)",
    )


def config_path(args: argparse.Namespace) -> str | None:
    """The file -c or $WAYPOST_CONFIG names (None: the embedded defaults); it must exist."""
    path: str | None = args.config
    if path is not None and not os.path.exists(path):
        raise CommandError(f"configuration file {path} does not exist", EXIT_CONFIG)
    return path


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def format_age(seconds: object) -> str:
    """`42s`, `5m`, `3h`, `2d`: short ages for queue listings; `?` for a damaged value."""
    if not is_number(seconds):
        return "?"
    assert isinstance(seconds, (int, float))
    seconds = max(0.0, float(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def format_interval(later: object, earlier: object) -> str:
    """The age between two times read from the database; `?` if either is damaged."""
    if is_number(later) and is_number(earlier):
        assert isinstance(later, (int, float)) and isinstance(earlier, (int, float))
        return format_age(later - earlier)
    return "?"


def format_time(epoch: object) -> str:
    if epoch is None:
        return "-"
    if not is_number(epoch) or not 0 <= epoch < 1e11:  # type: ignore[operator]
        return f"? ({epoch!r})"
    assert isinstance(epoch, (int, float))
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
