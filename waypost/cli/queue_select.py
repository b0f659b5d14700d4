"""What the `queue` verbs share: the MTA database they open, and what they take from the
operator: ages like `3h`, recipient states, and message ids on the command line or, with
`-`, from standard input (another command's output)."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable

from waypost.cli.common import CommandError, load
from waypost.config import Config
from waypost.message import BY_RANK, Priority
from waypost.setup.intake import database_location
from waypost.store.base import NoDatabaseError, RecipientState, StoreError
from waypost.store.database import Database

EXIT_USAGE = 2
STATES = tuple(s.value for s in RecipientState)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def open_queue(args: argparse.Namespace, config: Config | None = None) -> Database:
    """The MTA database of the configuration; it must exist already."""
    where = database_location(config if config is not None else load(args))
    try:
        return where.open()
    except NoDatabaseError as exc:
        raise CommandError(str(exc)) from None
    except StoreError as exc:
        raise CommandError(f"cannot open {where}: {exc}") from None


def age(text: str) -> float:
    """`90`, `90s`, `5m`, `3h`, `2d`, `1w` as seconds (an argparse type)."""
    match = _AGE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid age {text!r}: a number with s, m, h, d or w (5m, 3h, 2d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def count(text: str) -> int:
    """A number of lines to show, 0 or more (an argparse type)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: a whole number, 0 or more")
    return int(text)


def state(text: str) -> str:
    """A recipient state (an argparse type): a typo is refused, with the valid ones."""
    if text not in STATES:
        raise argparse.ArgumentTypeError(f"unknown state {text!r}: choose from {', '.join(STATES)}")
    return text


def priority(text: str) -> Priority:
    """A priority (an argparse type): urgent, normal or non-urgent."""
    for value in Priority:
        if text.lower() == value.label:
            return value
    choices = ", ".join(p.label for p in BY_RANK)
    raise argparse.ArgumentTypeError(f"unknown priority {text!r}: choose from {choices}")


def message_id(text: str) -> str:
    """A message id, or `-` for ids read from standard input (an argparse type)."""
    if text != "-" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid message id {text!r}: a number, or -")
    return text


def read_ids(lines: Iterable[str]) -> list[int]:
    """Message ids from standard input: numbers separated by white space, or the JSON
    lines of `waypost queue list --json` (their `id`). A bad line is a usage error."""
    ids: list[int] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text).get("id")
            except (ValueError, AttributeError):
                value = None
            if not isinstance(value, int) or isinstance(value, bool):
                raise CommandError(
                    f'standard input line {number}: a JSON object without a numeric "id"',
                    EXIT_USAGE,
                )
            ids.append(value)
            continue
        for word in text.split():
            if not word.isdigit():
                raise CommandError(
                    f"standard input line {number}: {word!r} is not a message id", EXIT_USAGE
                )
            ids.append(int(word))
    return ids


def unique(ids: Iterable[int]) -> list[int]:
    """The ids in the order given, each once."""
    return list(dict.fromkeys(ids))
