"""`waypost-sendmail` and `waypost-mailq`: the sendmail(1) command line programs and cron
expect (Postfix's sendmail(1) options), for users without access to the MTA database.

A message is dropped into the maildrop, fsync'd, and the running MTA asked to take it at
once; it is durable when this returns 0. `-bp` (or being called `mailq`) lists the queue;
`-bs` speaks SMTP on standard input and output, as some mail libraries expect.

Exit codes are sendmail's (sysexits.h): 0 queued, 64 usage, 65 bad message, 67 bad or
unroutable recipient, 69 queue listing unavailable, 75 not queued (try again),
78 bad configuration.
"""

from __future__ import annotations

import getopt
import os
import pwd
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from waypost.cli import sendmail_smtp
from waypost.clock import SystemClock
from waypost.config import Config, ConfigError, load_config
from waypost.local_submit.compose import compose, qualify
from waypost.local_submit.dropfile import (
    PICKUP_SOCKET,
    SHOWQ_SOCKET,
    DropEnvelope,
    DropError,
    encode,
    maildrop_dir,
    public_dir,
    write_drop,
)
from waypost.local_submit.showq import read_listing
from waypost.routing import RoutingTable
from waypost.setup.intake import build_intake, database_location

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78

# Postfix sendmail(1)'s option letters; those taking a value are followed by a colon.
OPTIONS = "B:C:F:GIL:N:O:R:UV:X:b:e:f:h:imno:p:q:r:tv"
ANSWER_TIMEOUT = 30.0  # how long to wait for the MTA's "queued"; the file is durable anyway
USAGE = (
    "usage: waypost-sendmail [-t] [-i|-oi] [-f sender] [-F full_name] [-C config] "
    "[-bm|-bp|-bs] [-oX...] [--] [recipient ...]"
)


class SendmailError(Exception):
    """What cannot be done, with its sysexits code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


@dataclass
class Request:
    """The command line, understood."""

    mode: str = "m"  # -bm: read a message and queue it; -bp: list the queue; -bs: SMTP
    config: str | None = None
    sender: str | None = None
    full_name: str = ""
    extract: bool = False
    dot_ends: bool = True  # without -i, a line of one "." ends the message
    recipients: list[str] = field(default_factory=list)


def parse(argv: Sequence[str], *, program: str) -> Request:
    request = Request(config=os.environ.get("WAYPOST_CONFIG") or None)
    if program in ("mailq", "waypost-mailq"):
        request.mode = "p"
    try:
        options, operands = getopt.getopt(list(argv), OPTIONS)
    except getopt.GetoptError as exc:
        raise SendmailError(f"{exc}\n{USAGE}", EX_USAGE) from None
    for option, value in options:
        if option == "-b":
            if value not in ("m", "p", "s"):
                raise SendmailError(f"-b{value} is not supported (only -bm, -bp and -bs)", EX_USAGE)
            request.mode = value
        elif option == "-C":
            request.config = value
        elif option in ("-f", "-r"):
            request.sender = value
        elif option == "-F":
            request.full_name = value
        elif option == "-t":
            request.extract = True
        elif option == "-i" or (option == "-o" and value == "i"):
            request.dot_ends = False
        elif option == "-q":
            raise SendmailError("-q is not supported: use `waypost queue retry --all`", EX_USAGE)
        # Every other option is accepted and ignored, as Postfix does for sendmail's.
    request.recipients = operands
    return request


def main(argv: Sequence[str] | None = None, *, program: str | None = None) -> int:
    program = program or Path(sys.argv[0]).name
    name = "waypost-mailq" if program in ("mailq", "waypost-mailq") else "waypost-sendmail"
    try:
        request = parse(sys.argv[1:] if argv is None else argv, program=program)
        config = _config(request.config)
        if request.mode == "p":
            return _list_queue(config)
        if request.mode == "s":
            return sendmail_smtp.converse(config, submit, check_recipient)
        return _send(request, config)
    except SendmailError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `mailq | head`: quiet, as other Unix tools (stdout is gone: do not flush it).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_OK
    except KeyboardInterrupt:
        return EX_TEMPFAIL
    except Exception as exc:
        print(f"{name}: unexpected error: {exc!r}", file=sys.stderr)
        return EX_SOFTWARE


def mailq_main() -> int:
    return main(program="mailq")


def _config(path: str | None) -> Config:
    if path is not None and not os.path.exists(path):
        raise SendmailError(f"configuration file {path} does not exist", EX_CONFIG)
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SendmailError(str(exc), EX_CONFIG) from None


def _send(request: Request, config: Config) -> int:
    if not request.recipients and not request.extract:
        raise SendmailError("no recipients: give them on the command line or use -t", EX_USAGE)
    content = _read_message(config.smtp.max_message_size, dot_ends=request.dot_ends)
    envelope = DropEnvelope(
        recipients=request.recipients,
        sender=request.sender,
        extract_recipients=request.extract,
        full_name=request.full_name,
    )
    submit(envelope, content, config)
    return EX_OK


def submit(envelope: DropEnvelope, content: bytes, config: Config) -> None:
    """Check, drop and hand over one message; raises SendmailError unless it is durable."""
    _check(envelope, content, config)
    maildrop = maildrop_dir(config.server.data_dir)
    try:
        name = write_drop(maildrop, encode(envelope, content))
    except OSError as exc:
        raise SendmailError(
            f"the message was NOT queued: cannot write into {maildrop}: {exc.strerror or exc}",
            EX_TEMPFAIL,
        ) from None
    answer = _ask(public_dir(config.server.data_dir) / PICKUP_SOCKET, name)
    status, _, detail = answer.partition(" ")
    if status == "rejected":
        raise SendmailError(f"the message was refused: {detail}", EX_DATAERR)


_ROUTING: dict[int, RoutingTable] = {}


def _routing(config: Config) -> RoutingTable:
    """The configuration's routing table, built once (a -bs session asks once per RCPT)."""
    if id(config) not in _ROUTING:
        _ROUTING[id(config)] = build_intake(config, SystemClock()).routing
    return _ROUTING[id(config)]


def check_recipient(address: str, config: Config) -> str:
    """The address as it will be stored, if it is one and has a route; else SendmailError."""
    try:
        canonical = qualify(address, config.server.hostname, "recipient")
    except DropError as exc:
        raise SendmailError(str(exc), EX_NOUSER) from None
    decision = _routing(config).route(canonical)
    if decision.next_hop is None:
        reason = decision.explanation[-1] if decision.explanation else "no route"
        raise SendmailError(f"recipient {canonical}: {reason}", EX_NOUSER)
    return canonical


def _read_message(limit: int, *, dot_ends: bool) -> bytes:
    """Standard input up to EOF, or (without -i) up to a line holding only a dot."""
    stdin = sys.stdin.buffer
    if not dot_ends:
        data = stdin.read(limit + 1)
    else:
        lines: list[bytes] = []
        size = 0
        while size <= limit:
            line = stdin.readline(limit + 1 - size + 2)  # bounded: a line may never end
            if not line or line in (b".\n", b".\r\n", b"."):
                break
            lines.append(line)
            size += len(line)
        data = b"".join(lines)
    if len(data) > limit:
        raise SendmailError(f"the message is larger than the limit of {limit} bytes", EX_DATAERR)
    return data


def _check(envelope: DropEnvelope, content: bytes, config: Config) -> None:
    """Refuse here what pickup would refuse, so the user sees why at once."""
    uid = os.getuid()
    try:
        login = pwd.getpwuid(uid).pw_name
    except KeyError:
        login = f"uid{uid}"
    try:
        message = compose(envelope, content, uid=uid, login=login, hostname=config.server.hostname)
    except DropError as exc:
        raise SendmailError(str(exc), EX_NOUSER) from None
    recipients = message.envelope.recipients
    if len(recipients) > config.smtp.max_recipients:
        raise SendmailError(f"more than {config.smtp.max_recipients} recipients", EX_DATAERR)
    for recipient in recipients:
        check_recipient(recipient.address, config)


def _ask(path: Path, name: str) -> str:
    """Ask the running MTA to take the file now; its answer, or "" if it is not running
    (the file is durable: pickup takes it when the MTA starts)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(ANSWER_TIMEOUT)
            sock.connect(os.fspath(path))
            sock.sendall(name.encode() + b"\n")
            with sock.makefile("rb") as answer:
                return answer.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _list_queue(config: Config) -> int:
    """Read the database when this user may (root, the MTA's user); otherwise ask the
    running MTA over its showq socket."""
    where = database_location(config)
    database = str(where)
    # An SQLite file this user may read directly; anything else through the running MTA.
    readable = where.is_sqlite and os.access(database, os.R_OK)
    if readable and os.access(Path(database).parent, os.W_OK):
        try:
            sys.stdout.write(read_listing(where))
        except Exception as exc:
            raise SendmailError(
                f"cannot read the queue from {database}: {exc}", EX_UNAVAILABLE
            ) from None
        sys.stdout.flush()
        return EX_OK
    path = public_dir(config.server.data_dir) / SHOWQ_SOCKET
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(ANSWER_TIMEOUT)
            sock.connect(os.fspath(path))
            with sock.makefile("rb") as listing:
                for line in listing:
                    sys.stdout.buffer.write(line)
    except OSError as exc:
        raise SendmailError(
            f"the queue listing is unavailable: Waypost is not running ({path}: "
            f"{exc.strerror or exc}) and this user cannot read {database}",
            EX_UNAVAILABLE,
        ) from None
    sys.stdout.flush()
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
