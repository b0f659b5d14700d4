"""Ways to damage a real MTA database file, as disks and bugs do, for tests of check and recovery.

`build_database` makes a real database through `waypost.store.Database`; each
damage function then changes it behind Waypost's back with a plain sqlite3
connection (or raw writes to the file) and returns the id or name of what it
damaged. None of them keeps a connection open.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import msgspec

from waypost.message import Envelope, Message, Recipient
from waypost.nexthop import NextHop, Transport
from waypost.store import Database, NewMessage

# The time at which build_database enqueues, and a time well after it when all is due.
ENQUEUED_AT = 1_800_000_000.0
LATER = ENQUEUED_AT + 3600.0
LIFETIME = 5 * 86400.0


def make_message(number: int, recipients: int = 2, content_size: int | None = None) -> NewMessage:
    """Message `number` with `recipients` recipients and some content (size varies by number)."""
    envelope = Envelope(
        mts_id=f"{number:06d}.test@waypost.test",
        originator=f"sender{number}@origin.test",
        recipients=[Recipient(address=f"rcpt{number}.{i}@dest.test") for i in range(recipients)],
    )
    size = 64 + (number * 37) % 2000 if content_size is None else content_size
    line = f"Message {number}. ".encode()
    content = (line * (size // len(line) + 1))[:size]
    return NewMessage(
        message=Message(envelope=envelope, content=content),
        next_hops=[NextHop(Transport.SMTP, f"hop{i % 3}.test") for i in range(recipients)],
    )


def build_database(
    path: str | os.PathLike[str],
    messages: int = 10,
    recipients: int | Sequence[int] = 2,
    *,
    content_size: int | None = None,
    now: float = ENQUEUED_AT,
) -> list[int]:
    """A real MTA database at `path` holding `messages` queued messages; returns their ids.

    `recipients` is the count for every message, or one count per message.
    """
    counts = [recipients] * messages if isinstance(recipients, int) else list(recipients)
    db = Database.open(os.fspath(path))
    try:
        with db.transaction():
            return [
                db.enqueue(make_message(i, count, content_size), now, LIFETIME)
                for i, count in enumerate(counts)
            ]
    finally:
        db.close()


@contextmanager
def raw(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, behind Waypost's back.

    Text that is not UTF-8 (see `garble_text`) reads back with lone surrogates
    instead of raising.
    """
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
    try:
        yield conn
    finally:
        conn.close()


def recipient_ids(path: str | os.PathLike[str], message_id: int) -> list[int]:
    """The recipient rows of one message, in rcpt_index order."""
    with raw(path) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT id FROM recipients WHERE message_id = ? ORDER BY rcpt_index", (message_id,)
            )
        ]


def unused_message_id(conn: sqlite3.Connection) -> int:
    """A message id that no message, content or recipient row uses."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM messages), 0), "
        "coalesce((SELECT max(message_id) FROM content), 0), "
        "coalesce((SELECT max(message_id) FROM recipients), 0))"
    ).fetchone()
    return int(row[0]) + 1


# -- row damage: each found and repaired by `waypost check --repair` -----------------------


def garble_envelope(path: str | os.PathLike[str], message_id: int) -> int:
    """Replace the message's envelope blob with bytes that are not msgpack (a scribbled page)."""
    with raw(path) as conn:
        conn.execute(
            "UPDATE messages SET envelope = ? WHERE id = ?",
            (b"\xc1\x00\xffgarbage\x13\x37" * 3, message_id),
        )
    return message_id


def mistype_envelope(path: str | os.PathLike[str], message_id: int) -> int:
    """Replace the envelope with valid msgpack of the wrong shape (a bug writing the wrong type)."""
    wrong = msgspec.msgpack.encode(
        {"mts_id": 12345, "originator": ["not", "a", "string"], "recipients": "everyone"}
    )
    with raw(path) as conn:
        conn.execute("UPDATE messages SET envelope = ? WHERE id = ?", (wrong, message_id))
    return message_id


def break_rcpt_index(path: str | os.PathLike[str], recipient_id: int, index: int = 999) -> int:
    """Point the recipient at an envelope recipient that does not exist: KB Q276222's
    "bad control-block index"."""
    with raw(path) as conn:
        conn.execute("UPDATE recipients SET rcpt_index = ? WHERE id = ?", (index, recipient_id))
    return recipient_id


def set_bogus_state(path: str | os.PathLike[str], recipient_id: int, state: str = "bogus") -> int:
    """Give the recipient a state that is not one of Waypost's."""
    with raw(path) as conn:
        conn.execute("UPDATE recipients SET state = ? WHERE id = ?", (state, recipient_id))
    return recipient_id


def garble_text(path: str | os.PathLike[str], recipient_id: int, column: str = "next_hop") -> int:
    """Store bytes that are not UTF-8 as the recipient's text `column` (a flipped high bit)."""
    if column not in ("address", "next_hop", "state", "report", "lease_owner"):
        raise ValueError(f"{column!r} is not a text column of recipients")
    with raw(path) as conn:
        conn.execute(
            f"UPDATE recipients SET {column} = CAST(X'686f70ff2e74657374' AS TEXT) WHERE id = ?",
            (recipient_id,),
        )
    return recipient_id


def point_recipient_at_missing_message(path: str | os.PathLike[str], recipient_id: int) -> int:
    """Make the recipient refer to a message id that does not exist; returns that id.

    Its own message then has one recipient row fewer than its envelope has
    recipients, which the check reports too (a recipient row is lost).
    """
    with raw(path) as conn:
        missing = unused_message_id(conn)
        conn.execute("UPDATE recipients SET message_id = ? WHERE id = ?", (missing, recipient_id))
    return missing


def truncate_content(path: str | os.PathLike[str], message_id: int, keep: int | None = None) -> int:
    """Cut the message's content short (half of it by default), as a torn write would."""
    with raw(path) as conn:
        (data,) = conn.execute(
            "SELECT data FROM content WHERE message_id = ?", (message_id,)
        ).fetchone()
        cut = len(data) // 2 if keep is None else keep
        conn.execute("UPDATE content SET data = ? WHERE message_id = ?", (data[:cut], message_id))
    return message_id


def delete_content(path: str | os.PathLike[str], message_id: int) -> int:
    """Delete the message's content row."""
    with raw(path) as conn:
        conn.execute("DELETE FROM content WHERE message_id = ?", (message_id,))
    return message_id


def add_orphan_content(
    path: str | os.PathLike[str], message_id: int | None = None, data: bytes = b"orphan " * 20
) -> int:
    """Insert a content row for a message that does not exist; returns its message id."""
    with raw(path) as conn:
        orphan = unused_message_id(conn) if message_id is None else message_id
        conn.execute("INSERT INTO content (message_id, data) VALUES (?, ?)", (orphan, data))
    return orphan


def strand_lease(
    path: str | os.PathLike[str],
    recipient_id: int,
    owner: str = "host:99999:dead",
    due_at: float = LATER + 86400.0,
) -> int:
    """Leave the recipient leased by a worker that is gone, its lease running into the future."""
    with raw(path) as conn:
        conn.execute(
            "UPDATE recipients SET state = 'leased', lease_owner = ?, due_at = ? WHERE id = ?",
            (owner, due_at, recipient_id),
        )
    return recipient_id


# -- structural damage -----------------------------------------------------------------------


def drop_index(path: str | os.PathLike[str], name: str = "recipients_due") -> str:
    """Drop one of the schema's indexes."""
    with raw(path) as conn:
        conn.execute(f'DROP INDEX "{name}"')
    return name


def scramble_index(path: str | os.PathLike[str], name: str = "recipients_message") -> str:
    """Make an index disagree with its table (integrity_check: "row N missing from index").

    The index is rebuilt over another column behind SQLite's back, then its
    recorded definition is put back: the entries no longer match the rows.
    Only `recipients_message` (on message_id) is supported.
    """
    if name != "recipients_message":
        raise ValueError("scramble_index supports recipients_message only")
    good = "CREATE INDEX recipients_message ON recipients (message_id)"
    bad = "CREATE INDEX recipients_message ON recipients (rcpt_index)"
    with raw(path) as conn:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?", (bad, name))
    with raw(path) as conn:
        # This connection read the bad definition: the index is rebuilt by rcpt_index…
        conn.execute(f'REINDEX "{name}"')
        # …and the good definition goes back over those entries.
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?", (good, name))
    return name


# -- damage below the row level: fatal for the check, which must not write to the file -----


def checkpoint(path: str | os.PathLike[str]) -> None:
    """Move everything in the WAL into the main file and empty the WAL."""
    with raw(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def tear_page(
    path: str | os.PathLike[str], page: int | None = None, *, fill: str = "garbage"
) -> int:
    """Overwrite one page of the file (the middle one by default); returns its number.

    The WAL is checkpointed first, so that the damaged page is the one SQLite
    reads. `fill` is "garbage" (fixed pseudo-random bytes: integrity_check
    always notices on a b-tree or overflow page) or "zeros" (SQLite has no
    page checksums: zeros inside an overflow page's data can go unnoticed).
    """
    checkpoint(path)
    with raw(path) as conn:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        page_count = int(conn.execute("PRAGMA page_count").fetchone()[0])
    number = page_count // 2 + 1 if page is None else page
    if not 1 <= number <= page_count:
        raise ValueError(f"page {number} is not in 1..{page_count}")
    if fill == "zeros":
        data = bytes(page_size)
    elif fill == "garbage":
        data = random.Random(number).randbytes(page_size)
    else:
        raise ValueError(f"fill {fill!r} is not garbage or zeros")
    with open(path, "r+b") as f:
        f.seek((number - 1) * page_size)
        f.write(data)
    return number


def truncate_file(path: str | os.PathLike[str], fraction: float = 0.5) -> int:
    """Cut the database file short (a lost tail); returns the new size."""
    checkpoint(path)
    size = int(os.path.getsize(path) * fraction)
    os.truncate(path, size)
    return size


def write_not_a_database(path: str | os.PathLike[str]) -> None:
    """Replace the file with text that is not an SQLite database at all (and drop its WAL)."""
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    with open(path, "wb") as f:
        f.write(b"This is not an SQLite database; it is a text file.\n" * 200)


def file_bytes(path: str | os.PathLike[str]) -> bytes:
    """The database file's bytes, to show that something did not write to it."""
    with open(path, "rb") as f:
        return f.read()
