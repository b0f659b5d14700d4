"""What a check found and what its repair did: problems, the report, and the exit codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from waypost.store.schema import SCHEMA_VERSION

EXIT_CLEAN = 0
EXIT_PROBLEMS = 1
EXIT_REPAIRED = 3
EXIT_FATAL = 4  # not 2: every waypost command keeps 2 for bad usage


class FatalKind(enum.StrEnum):
    """Why the database cannot be checked row by row."""

    MISSING = "missing"
    UNREADABLE = "unreadable"
    CORRUPT = "corrupt"
    NOT_WAYPOST = "not-waypost"
    SCHEMA = "schema"
    VERSION = "version"


class Repair(enum.StrEnum):
    """What `--repair` does about a problem."""

    QUARANTINE_MESSAGE = "quarantine-message"
    QUARANTINE_RECIPIENT = "quarantine-recipient"
    REMOVE_RECIPIENT = "remove-recipient"
    QUARANTINE_CONTENT = "quarantine-content"
    REQUEUE = "requeue"
    CREATE_TABLE = "create-table"
    SET_VERSION = "set-version"
    CREATE_INDEX = "create-index"
    REINDEX = "reindex"
    UPGRADE = "upgrade"
    SET_RANK = "set-rank"


SCHEMA_REPAIRS = frozenset(
    {Repair.CREATE_TABLE, Repair.SET_VERSION, Repair.CREATE_INDEX, Repair.REINDEX, Repair.UPGRADE}
)
QUARANTINE_REPAIRS = frozenset(
    {
        Repair.QUARANTINE_MESSAGE,
        Repair.QUARANTINE_RECIPIENT,
        Repair.REMOVE_RECIPIENT,
        Repair.QUARANTINE_CONTENT,
    }
)

# (what repair would do, what it did)
_REPAIR_TEXT: dict[Repair, tuple[str, str]] = {
    Repair.QUARANTINE_MESSAGE: (
        "repair moves the message and its recipients to quarantine",
        "moved the message and its recipients to quarantine",
    ),
    Repair.QUARANTINE_RECIPIENT: (
        "repair moves the recipient to quarantine",
        "moved the recipient to quarantine",
    ),
    Repair.REMOVE_RECIPIENT: (
        "repair moves the recipient row to the quarantine table",
        "moved the recipient row to the quarantine table",
    ),
    Repair.QUARANTINE_CONTENT: (
        "repair moves the content to the quarantine table",
        "moved the content to the quarantine table",
    ),
    Repair.REQUEUE: ("repair queues it again", "queued again"),
    Repair.CREATE_TABLE: ("repair creates it, empty", "created, empty"),
    Repair.SET_VERSION: (
        f"repair records schema version {SCHEMA_VERSION}",
        f"recorded schema version {SCHEMA_VERSION}",
    ),
    Repair.CREATE_INDEX: ("repair recreates it", "recreated"),
    Repair.REINDEX: ("repair rebuilds it from its table", "rebuilt from its table"),
    Repair.UPGRADE: (
        f"repair (or the next start) brings it to version {SCHEMA_VERSION}",
        f"brought to version {SCHEMA_VERSION}",
    ),
    Repair.SET_RANK: ("repair sets it from the priority", "set from the priority"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One bad object: `kind` is message, recipient, content, table, index or meta."""

    kind: str
    object_id: int | str
    reason: str
    action: Repair
    repaired: bool = False

    @property
    def repair(self) -> str:
        """What repair does about it, or did."""
        future, past = _REPAIR_TEXT[self.action]
        return past if self.repaired else future


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What one `check_database` found, and what its repair did.

    `messages`, `recipients` and `content` count the rows checked;
    `quarantined_*` count objects already in quarantine (not problems);
    `after` is the check run again after a repair.
    """

    path: str
    fatal: str | None = None
    fatal_kind: FatalKind | None = None
    schema_version: int | None = None
    messages: int = 0
    recipients: int = 0
    content: int = 0
    problems: tuple[Problem, ...] = ()
    repair_requested: bool = False
    repaired: int = 0
    repair_error: str | None = None
    quarantined_messages: int = 0
    quarantined_recipients: int = 0
    quarantine_entries: int = 0
    after: CheckReport | None = None
    seconds: float = 0.0

    @property
    def objects(self) -> int:
        return self.messages + self.recipients + self.content

    @property
    def clean(self) -> bool:
        return self.fatal is None and not self.problems

    @property
    def remaining(self) -> tuple[Problem, ...]:
        """Problems still in the database: after a repair, those its second check found."""
        if self.after is not None:
            return self.after.problems
        return tuple(p for p in self.problems if not p.repaired)

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return EXIT_FATAL
        if not self.problems:
            return EXIT_CLEAN
        if self.after is not None:
            if self.after.fatal is not None:
                return EXIT_FATAL
            if self.after.clean and self.repaired:
                return EXIT_REPAIRED
        return EXIT_PROBLEMS


def plural(n: int, word: str, words: str | None = None) -> str:
    """`n` and `word`, or `words` (default `word` + s) unless `n` is 1: the reports' counts."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"
