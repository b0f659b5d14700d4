"""RFC 5322 header fields written as text, octet for octet as the email package writes them
with the gateway's policy, without building its header objects for the plain cases."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

from waypost.mixer.bodies import DEFAULT_POLICY

# RFC 5322 §2.1.1: folded only at the hard limit of 998 characters, lines ending in CRLF.
WRITING = DEFAULT_POLICY.clone(linesep="\r\n", max_line_length=998)
_LIMIT = 998

FieldValue = str | Sequence[Address]
# Fields the email package writes from the date-time it parsed, as format_datetime writes
# it: written as given when that is what it would write.
_REWRITTEN = frozenset({"date", "resent-date", "orig-date"})
# Fields the email package parses as structured text and writes from what it parsed: as
# text, always through the package (address fields are written from Address objects).
_STRUCTURED = frozenset(
    {
        *("from", "sender", "to", "cc", "bcc", "reply-to"),
        *("resent-from", "resent-sender", "resent-to", "resent-cc", "resent-bcc"),
        *("mime-version", "content-type", "content-disposition", "content-transfer-encoding"),
    }
)
# Message-ID: parsed as RFC 5322 §3.6.4's msg-id; written as given when it is one of dot
# atoms, or a quoted local part without quoted-pairs.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_MSG_ID = re.compile(rf'<(?:{_DOT_ATOM}|"[\x20\x21\x23-\x5b\x5d-\x7e]*")@{_DOT_ATOM}>')


def _plain(text: str) -> bool:
    """Whether a value is written exactly as given: printable ASCII (U+0020 to U+007E, what
    isascii and isprintable together admit), with no "=?" (which the email package reads
    as the start of an RFC 2047 encoded-word and writes again decoded) and no white space
    at either end or doubled (which its folder may drop or move)."""
    return (
        text.isascii()
        and text.isprintable()
        and "=?" not in text
        and "  " not in text
        and text[:1] != " "
        and text[-1:] != " "
    )


@lru_cache(maxsize=128)
def _name_kind(name: str) -> tuple[bool, bool, bool, bool]:
    """Of a field name: whether it is written as given, whether its value is structured,
    rewritten from its date-time, a Message-ID."""
    lower = name.lower()
    return _plain(name), lower in _STRUCTURED, lower in _REWRITTEN, lower == "message-id"


@lru_cache(maxsize=256)  # the Date: fields a gateway writes repeat within each second
def _as_formatted(text: str) -> bool:
    try:
        return format_datetime(parsedate_to_datetime(text)) == text
    except (TypeError, ValueError):
        return False


def field_bytes(name: str, value: FieldValue) -> bytes:
    """`name: value` and its line end, as `message[name] = value` and the BytesGenerator
    with the WRITING policy write it."""
    plain_name, structured, rewritten, msg_id = _name_kind(name)
    if isinstance(value, str):
        text = "" if structured else value
    else:
        text = ", ".join(str(a) for a in value)
    if (
        text
        and plain_name
        and len(name) + 2 + len(text) <= _LIMIT
        and _plain(text)
        and (not rewritten or _as_formatted(text))
        and (not msg_id or _MSG_ID.fullmatch(text) is not None)
    ):
        return f"{name}: {text}\r\n".encode("ascii")
    # Folding, RFC 2047 encoded-words, quoting, 8-bit octets: the email package's own.
    return WRITING.fold_binary(name, WRITING.header_store_parse(name, value)[1])


def header_block(fields: Iterable[tuple[str, FieldValue]]) -> bytes:
    """The header fields, each as field_bytes writes it, without the blank line after."""
    return b"".join(field_bytes(name, value) for name, value in fields)


@lru_cache(maxsize=256)
def _mail_date(second: datetime) -> str:
    return format_datetime(second)


def mail_date(timestamp: float) -> str:
    """The RFC 5322 §3.3 date-time of a POSIX time in UTC, as email.utils.format_datetime
    writes it (to the second), remembered: a gateway writes the same few seconds into
    message after message."""
    return _mail_date(datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0))
