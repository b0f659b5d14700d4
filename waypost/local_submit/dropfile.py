"""The maildrop file: what `waypost-sendmail` writes and pickup reads, and where it goes.

A file is a magic line, one JSON line with the envelope, then the message as given.
Pickup treats every file as untrusted: `decode` enforces the limits it is given.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

import msgspec

MAGIC = b"WAYPOST-MAILDROP 1\n"
MAX_ENVELOPE_LINE = 1024 * 1024

MAILDROP = "maildrop"  # anyone writes, nobody lists, the sticky bit keeps users apart
PUBLIC = "public"  # the sockets anyone may connect to
QUARANTINE = "maildrop-quarantine"  # bad files, for the operator
PICKUP_SOCKET = "pickup"  # "a file is there": pickup takes it now and answers
SHOWQ_SOCKET = "showq"  # the queue listing for `mailq`

MAILDROP_MODE = 0o1733
PUBLIC_MODE = 0o711
SOCKET_MODE = 0o666
# Postfix's convention: a file is complete once its owner-execute bit is set. The
# submitter cannot fsync the maildrop (it may not read it), so it cannot make a rename
# durable; the file is created under its final name, written, marked and fsync'd
# together, which Linux's journalling file systems persist with the new name.
COMPLETE_MODE = 0o744  # others-read: pickup runs as the MTA's user, not the file's owner
COMPLETE_BIT = 0o100


class DropError(Exception):
    """A maildrop file that pickup cannot take; the message says why."""


class DropEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What `waypost-sendmail` was asked: `sender` None means the submitting user."""

    recipients: list[str]
    sender: str | None = None
    extract_recipients: bool = False  # -t: the recipients of To:, Cc: and Bcc: too
    full_name: str = ""  # -F: for the From: field pickup adds when there is none


def encode(envelope: DropEnvelope, content: bytes) -> bytes:
    return MAGIC + msgspec.json.encode(envelope) + b"\n" + content


def decode(data: bytes, *, max_content: int, max_recipients: int) -> tuple[DropEnvelope, bytes]:
    """The envelope and content of a file, or DropError naming what is wrong."""
    if not data.startswith(MAGIC):
        raise DropError("not a maildrop file (no WAYPOST-MAILDROP 1 line)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_ENVELOPE_LINE + 1)
    if end < 0:
        raise DropError(f"no envelope line within {MAX_ENVELOPE_LINE} bytes")
    try:
        envelope = msgspec.json.decode(data[len(MAGIC) : end], type=DropEnvelope)
    except msgspec.ValidationError as exc:
        raise DropError(f"bad envelope: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DropError(f"envelope is not JSON: {exc}") from None
    content = data[end + 1 :]
    if len(content) > max_content:
        raise DropError(f"message of {len(content)} bytes is over the limit of {max_content}")
    if len(envelope.recipients) > max_recipients:
        raise DropError(
            f"{len(envelope.recipients)} recipients are over the limit of {max_recipients}"
        )
    return envelope, content


def maildrop_dir(data_dir: str) -> Path:
    return Path(data_dir) / MAILDROP


def public_dir(data_dir: str) -> Path:
    return Path(data_dir) / PUBLIC


def write_drop(maildrop: Path, data: bytes) -> str:
    """Write one file into the maildrop, durably (raises OSError); returns its name."""
    # The name is the only secret: others can read a file whose name they know.
    name = f"{int(time.time())}.{os.getpid()}.{secrets.token_hex(12)}"
    path = maildrop / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, COMPLETE_MODE)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)  # else pickup removes an incomplete file once it is old
        raise
    os.close(fd)
    return name
