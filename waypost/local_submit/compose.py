"""A maildrop file made into a message, as Postfix's cleanup does for sendmail: recipients
from the header with -t, Bcc: removed, a Received: naming the submitting user, and the
Date:, Message-ID: and From: fields a local program may have left out."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable

from waypost.address import AddressError, canonical_address, is_oraddress_text
from waypost.local_submit.dropfile import DropEnvelope, DropError
from waypost.message import ContentType, Envelope, Message, Recipient, new_mts_id

# RFC 5322 §2.2: a field name is printable US-ASCII but the colon; §2.2.3 folding.
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_RECIPIENT_FIELDS = (b"to", b"cc", b"bcc")


def compose(
    envelope: DropEnvelope, content: bytes, *, uid: int, login: str, hostname: str
) -> Message:
    """The message to admit, or DropError naming the address or field that is wrong.

    `uid` and `login` come from the file's owner, never from its content."""
    fields, body, separated = _split(content)
    recipients = list(envelope.recipients)
    if envelope.extract_recipients:
        for name, lines in fields:
            if name in _RECIPIENT_FIELDS:
                recipients.extend(_addresses(lines))
    # RFC 5322 §3.6.3: Bcc: recipients are not shown to the others.
    fields = [(name, lines) for name, lines in fields if name != b"bcc"]
    addresses = _unique(qualify(r, hostname, "recipient") for r in recipients)
    if not addresses:
        raise DropError("no recipients (none given, and none in To:, Cc: or Bcc: with -t)")
    sender = _sender(envelope.sender, login, hostname)
    mts_id = new_mts_id(hostname)
    now = time.time()
    newline = b"\r\n" if b"\r\n" in content[:1000] else b"\n"
    date = email.utils.formatdate(now, localtime=True)
    names = {name for name, _ in fields}
    added = [f"Received: by {hostname} (Waypost, from userid {uid}) id {mts_id}; {date}"]
    if b"date" not in names:
        added.append(f"Date: {date}")
    if b"message-id" not in names:
        added.append(f"Message-ID: <{mts_id}>")
    if b"from" not in names:
        user = sender or qualify(login, hostname, "sender")  # -f '<>': still from the user
        added.append(f"From: {_from_field(envelope.full_name, user)}")
    head = b"".join(line.encode() + newline for line in added)
    head += b"".join(b"".join(lines) for _, lines in fields)
    message_content = head + (newline if separated or not fields or body else b"") + body
    return Message(
        envelope=Envelope(
            mts_id=mts_id,
            originator=sender,
            recipients=[
                Recipient(address=a, originally_specified_number=i + 1)
                for i, a in enumerate(addresses)
            ],
            content_type=ContentType.INTERNET,
            arrival=now,
        ),
        content=message_content,
    )


def _split(content: bytes) -> tuple[list[tuple[bytes, list[bytes]]], bytes, bool]:
    """The header fields (lower-cased name, raw lines), the body, and whether a blank line
    separated them. The header ends at a blank line or at the first line that is not a
    field, as a program piping to sendmail may give no header at all."""
    fields: list[tuple[bytes, list[bytes]]] = []
    offset = 0
    while offset < len(content):
        end = content.find(b"\n", offset)
        end = len(content) if end < 0 else end + 1
        line = content[offset:end]
        if line in (b"\n", b"\r\n"):
            return fields, content[end:], True
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
        elif (match := _FIELD.match(line)) is not None:
            fields.append((match.group(1).lower(), [line]))
        else:
            break
        offset = end
    return fields, content[offset:], False


def _addresses(lines: list[bytes]) -> list[str]:
    value = b"".join(lines).partition(b":")[2].decode("utf-8", "replace")
    value = re.sub(r"\r?\n", "", value)
    return [address for _, address in email.utils.getaddresses([value]) if address]


def qualify(address: str, hostname: str, role: str) -> str:
    """An address as stored: a bare name gets the hostname; DropError if it is not one."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if is_oraddress_text(text):
        raise DropError(f"{role} {text!r} is an X.400 O/R address: use `waypost submit`")
    if "@" not in text:
        text = f"{text}@{hostname}"  # Postfix's append_at_myorigin
    try:
        return canonical_address(text)
    except AddressError as exc:
        raise DropError(f"{role} {address!r}: {exc}") from None


def _sender(given: str | None, login: str, hostname: str) -> str:
    if given is None:
        return qualify(login, hostname, "sender")
    if given.strip() in ("", "<>"):
        return ""  # -f '<>': the null reverse path, as for a bounce
    return qualify(given, hostname, "sender")


def _from_field(full_name: str, address: str) -> str:
    name = re.sub(r"[\x00-\x1f\x7f]", "", full_name)
    return email.utils.formataddr((name, address)) if name else address


def _unique(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addresses))
