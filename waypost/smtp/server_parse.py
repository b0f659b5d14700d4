"""Parsing the arguments of SMTP server commands: HELO, paths, ESMTP parameters, BDAT.

Pure functions; each refusal is a `CommandError` carrying the reply to send.
Addresses are parsed by `waypost.address`, xtext by `waypost.smtp.xtext`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from waypost.address import AddressError, Mailbox, parse_path
from waypost.message import Notify, Ret
from waypost.smtp import server_replies as replies
from waypost.smtp.server_events import MailFrom, RcptTo
from waypost.smtp.server_replies import Reply
from waypost.smtp.xtext import XtextError, decode_xtext

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
_DIGITS = re.compile(r"[0-9]{1,18}")

MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2
MAX_HELO_NAME = 255


MAX_DETAIL = 200


class CommandError(Exception):
    """A command refused; `reply` is what the client is told.

    A `detail` often quotes what the peer sent: it is cut short and made ASCII,
    so that any input gives a valid reply line.
    """

    def __init__(self, reply: Reply, detail: str | None = None) -> None:
        super().__init__(detail or reply.text)
        if detail is None:
            self.reply = reply
            return
        detail = detail.encode("ascii", "backslashreplace").decode("ascii")
        if len(detail) > MAX_DETAIL:
            detail = detail[: MAX_DETAIL - 3] + "..."
        self.reply = reply.with_text(f"{reply.text}: {detail}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Offered:
    """The ESMTP extensions offered in this session, which decide the parameters allowed."""

    esmtp: bool = True
    size: bool = True
    eight_bit_mime: bool = True
    binarymime: bool = False
    smtputf8: bool = True
    dsn: bool = True
    auth: bool = False
    max_size: int = 0


def check_hello_name(arg: str) -> str:
    """The HELO/EHLO argument: one printable ASCII token (policy is the application's)."""
    name = arg.strip(" ")
    if not name:
        raise CommandError(replies.HELO_SYNTAX)
    if " " in name or not name.isascii() or len(name) > MAX_HELO_NAME:
        raise CommandError(replies.HELO_BAD_NAME)
    return name


def parse_mail(arg: str, offered: Offered, *, authenticated: bool) -> MailFrom:
    """`FROM:<path> [params]` → MailFrom, or CommandError."""
    path, params = _split_command(arg, "FROM:", replies.MAIL_SYNTAX)
    values = _parameters(params, offered)
    size = body = ret = envid = auth = None
    smtputf8 = False
    for key, value in values.items():
        if key == "SIZE" and offered.size:
            size = _size(value, offered.max_size)
        elif key == "BODY" and offered.eight_bit_mime:
            body = _body(value, offered)
        elif key == "SMTPUTF8" and offered.smtputf8:
            if value is not None:
                raise CommandError(replies.BAD_PARAMETER, "SMTPUTF8 takes no value")
            smtputf8 = True
        elif key == "RET" and offered.dsn:
            ret = _ret(value)
        elif key == "ENVID" and offered.dsn:
            envid = _envid(value)
        elif key == "AUTH" and offered.auth:
            auth = _auth(value, authenticated=authenticated)
        else:
            raise CommandError(replies.UNKNOWN_PARAMETER, key)
    if not smtputf8 and not path.isascii():
        raise CommandError(replies.NON_ASCII_ADDRESS)
    try:
        reverse_path = parse_path(path)
    except AddressError as exc:
        raise CommandError(replies.BAD_SENDER, str(exc)) from None
    return MailFrom(
        reverse_path=reverse_path,
        size=size,
        body=body,
        smtputf8=smtputf8,
        ret=ret,
        envid=envid,
        auth=auth,
    )


def parse_rcpt(arg: str, offered: Offered, *, smtputf8: bool, hostname: str) -> RcptTo:
    """`TO:<path> [params]` → RcptTo, or CommandError. `<postmaster>` is `postmaster@hostname`
    (the caller passes the local domain its postmaster is at)."""
    path, params = _split_command(arg, "TO:", replies.RCPT_SYNTAX)
    values = _parameters(params, offered)
    notify: tuple[Notify, ...] = ()
    orcpt = None
    for key, value in values.items():
        if key == "NOTIFY" and offered.dsn:
            notify = _notify(value)
        elif key == "ORCPT" and offered.dsn:
            orcpt = _orcpt(value, smtputf8=smtputf8)
        else:
            raise CommandError(replies.UNKNOWN_PARAMETER, key)
    if not smtputf8 and not path.isascii():
        raise CommandError(replies.NON_ASCII_ADDRESS)
    inner = path.strip()[1:-1]
    if inner.lower() == "postmaster":
        # RFC 5321 §4.5.1: <Postmaster> with no domain must always be accepted.
        return RcptTo(path=Mailbox(inner, hostname), notify=notify, orcpt=orcpt)
    try:
        mailbox = parse_path(path)
    except AddressError as exc:
        raise CommandError(replies.BAD_RECIPIENT, str(exc)) from None
    if mailbox is None:
        raise CommandError(replies.BAD_RECIPIENT, "the null path is not a recipient")
    return RcptTo(path=mailbox, notify=notify, orcpt=orcpt)


def parse_bdat(arg: str) -> tuple[int | None, bool, Reply | None]:
    """`chunk-size [LAST]` → (size, last, error).

    The size is None when it cannot be read: then the end of the chunk cannot
    be found and the connection has to be closed. With a size but a bad rest,
    the chunk is still read and thrown away, and `error` answers it.
    """
    words = arg.split(" ")
    if not words or not _DIGITS.fullmatch(words[0]):
        return None, False, replies.BDAT_SYNTAX
    size = int(words[0])
    rest = [w for w in words[1:] if w]
    if not rest:
        return size, False, None
    if len(rest) == 1 and rest[0].upper() == "LAST":
        return size, True, None
    return size, False, replies.BDAT_SYNTAX


def _split_command(arg: str, keyword: str, syntax: Reply) -> tuple[str, str]:
    """`FROM:<path> params` → (`<path>`, `params`); spaces after the colon are tolerated."""
    if not arg[: len(keyword)].upper() == keyword:
        raise CommandError(syntax)
    text = arg[len(keyword) :].lstrip(" ")
    if not text.startswith("<"):
        raise CommandError(syntax)
    end = _path_end(text)
    if end is None:
        raise CommandError(syntax)
    rest = text[end:]
    if rest and not rest.startswith(" "):
        raise CommandError(syntax)
    return text[:end], rest


def _path_end(text: str) -> int | None:
    """The index after the `>` closing the path at the start of text (quotes respected)."""
    quoted = False
    i = 1
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i + 1
        i += 1
    return None


def _parameters(text: str, offered: Offered) -> dict[str, str | None]:
    """`KEY[=value]` words → {KEY: value}; syntax and duplicates checked, not meaning."""
    values: dict[str, str | None] = {}
    for word in text.split(" "):
        if not word:
            continue
        if not offered.esmtp:
            # After HELO no extension is in force: any parameter is unknown.
            raise CommandError(replies.UNKNOWN_PARAMETER, word.partition("=")[0])
        key, eq, value = word.partition("=")
        if not _KEYWORD.fullmatch(key) or (eq and not value):
            raise CommandError(replies.BAD_PARAMETER, "bad parameter syntax")
        key = key.upper()
        if key in values:
            raise CommandError(replies.BAD_PARAMETER, f"{key} given twice")
        values[key] = value if eq else None
    return values


def _size(value: str | None, limit: int) -> int:
    if value is None or not value.isascii() or not _DIGITS.fullmatch(value):
        raise CommandError(replies.BAD_PARAMETER, "SIZE must be a number of octets")
    size = int(value)
    if limit and size > limit:
        raise CommandError(replies.MESSAGE_TOO_BIG)
    return size


def _body(value: str | None, offered: Offered) -> str:
    body = (value or "").upper()
    if body == "BINARYMIME" and not offered.binarymime:
        raise CommandError(replies.UNKNOWN_PARAMETER, "BODY=BINARYMIME is not supported")
    if body not in ("7BIT", "8BITMIME", "BINARYMIME"):
        raise CommandError(replies.BAD_PARAMETER, "BODY must be 7BIT or 8BITMIME")
    return body


def _ret(value: str | None) -> Ret:
    try:
        return Ret((value or "").upper())
    except ValueError:
        raise CommandError(replies.BAD_PARAMETER, "RET must be FULL or HDRS") from None


def _xtext(value: str | None, name: str) -> str:
    if not value:
        raise CommandError(replies.BAD_PARAMETER, f"{name} needs a value")
    try:
        return decode_xtext(value)
    except XtextError:
        raise CommandError(replies.BAD_PARAMETER, f"{name} is not valid xtext") from None


def _envid(value: str | None) -> str:
    envid = _xtext(value, "ENVID")
    if len(value or "") > MAX_ENVID or not all(" " <= c <= "~" for c in envid):
        raise CommandError(replies.BAD_PARAMETER, "ENVID must be printable ASCII, at most 100")
    return envid


def _auth(value: str | None, *, authenticated: bool) -> str:
    if value == "<>":
        return value
    decoded = _xtext(value, "AUTH")
    # RFC 4954 §5: the identity of an unauthenticated client is not trusted.
    return decoded if authenticated else "<>"


def _notify(value: str | None) -> tuple[Notify, ...]:
    words = (value or "").upper().split(",")
    try:
        notify = tuple(Notify(w) for w in words)
    except ValueError:
        raise CommandError(
            replies.BAD_PARAMETER, "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY"
        ) from None
    if len(set(notify)) != len(notify):
        raise CommandError(replies.BAD_PARAMETER, "NOTIFY repeats a value")
    if Notify.NEVER in notify and len(notify) > 1:
        raise CommandError(replies.BAD_PARAMETER, "NOTIFY=NEVER must be alone")
    return notify


def _orcpt(value: str | None, *, smtputf8: bool) -> str:
    if not value or len(value) > MAX_ORCPT:
        raise CommandError(replies.BAD_PARAMETER, "ORCPT must be addr-type;address, at most 500")
    addr_type, semi, address = value.partition(";")
    if not semi or not _ATEXT.fullmatch(addr_type) or not address:
        raise CommandError(replies.BAD_PARAMETER, "ORCPT must be addr-type;address")
    if addr_type.lower() == "utf-8" and (smtputf8 or address.isascii()):
        # RFC 6533 utf-8-addr-xtext/unitext: its own escapes, kept as sent.
        return value
    decoded = _xtext(address, "ORCPT")
    if not decoded or any(ord(c) < 32 or ord(c) == 127 for c in decoded):
        raise CommandError(
            replies.BAD_PARAMETER, "ORCPT address is empty or has control characters"
        )
    return f"{addr_type};{decoded}"
