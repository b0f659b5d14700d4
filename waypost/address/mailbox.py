"""RFC 5321 mailboxes and SMTP paths, with RFC 6531 UTF-8 local parts and U-labels.

A `Mailbox` keeps its local part as written (unquoted) and its domain in lower
case; `str()` quotes the local part only when it is not a Dot-string.
"""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata
from dataclasses import dataclass

# RFC 5321 §4.5.3.1; the whole mailbox is the 256-octet path less its "<" and ">".
MAX_LOCAL_OCTETS = 64
MAX_DOMAIN_OCTETS = 255
MAX_LABEL_OCTETS = 63
MAX_MAILBOX_OCTETS = 254


class AddressError(ValueError):
    """Text that is not a valid address; the message says what is wrong with it."""


_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset(string.ascii_lowercase + string.digits + "-")
# A local part delivered here names a directory under the Maildir root: nothing that could
# climb out of it (`/`, `..`), hide a file (a leading dot) or need quoting (space, quote).
_MAILBOX_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-=?^_`{|}~][A-Za-z0-9.!#$%&'*+\-=?^_`{|}~]*")
# RFC 5321 §4.5.1: every domain that takes mail has a postmaster.
POSTMASTER = "postmaster"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An RFC 5321 Mailbox: `local` unquoted and as written, `domain` in lower case.

    An address literal domain is kept in its canonical form (`[192.0.2.1]`,
    `[IPv6:2001:db8::1]`). Construction validates both parts and the length limits.
    """

    local: str
    domain: str

    def __post_init__(self) -> None:
        _check_local(self.local)
        object.__setattr__(self, "domain", parse_domain(self.domain))
        octets = len(str(self).encode("utf-8"))
        if octets > MAX_MAILBOX_OCTETS:
            raise AddressError(
                f"address too long: {octets} octets (RFC 5321 allows at most {MAX_MAILBOX_OCTETS})"
            )

    def __str__(self) -> str:
        return f"{quote_local(self.local)}@{self.domain}"


def parse_mailbox(text: str) -> Mailbox:
    """Parse `local@domain` (a Dot-string or Quoted-string local part); raises AddressError."""
    if not text:
        raise AddressError("empty address")
    if text.startswith('"'):
        local, end = _parse_quoted(text)
        if end == len(text):
            raise AddressError("missing @ after the quoted local part")
        if text[end] != "@":
            raise AddressError("unexpected text after the quoted local part (expected @)")
        return Mailbox(local, text[end + 1 :])
    at = text.find("@")
    if at == -1:
        raise AddressError("missing @")
    local = text[:at]
    if not local:
        raise AddressError("empty local part")
    for atom in local.split("."):
        if not atom:
            raise AddressError("local part has an empty atom (a leading, trailing or double dot)")
        for ch in atom:
            if not _is_atext(ch):
                _check_local(ch)  # a control character is refused quoted or not
                raise AddressError(
                    f"local part: character {ch!r} is not allowed unless the local part is quoted"
                )
    return Mailbox(local, text[at + 1 :])


def mailbox_name(local: str) -> str:
    """The local mailbox a local part is delivered to: its name in lower case. Raises
    AddressError when the local part cannot name one (the SMTP server refuses such a
    recipient at RCPT, the Maildir delivery never writes one)."""
    name = local.lower()
    if not _MAILBOX_NAME.fullmatch(name) or ".." in name:
        raise AddressError(f"local part {local!r} cannot be a mailbox name")
    return name


def parse_path(text: str) -> Mailbox | None:
    """Parse an SMTP path `<mailbox>`; `<>` (the null path) gives None.

    A source route (`<@a,@b:x@y>`) is checked and dropped, as RFC 5321 §3.3 lets a
    receiver do.
    """
    path = text.strip()
    if len(path) < 2 or path[0] != "<" or path[-1] != ">":
        raise AddressError("a path must be enclosed in < and >")
    inner = path[1:-1]
    if not inner:
        return None
    if inner.startswith("@"):
        inner = _drop_source_route(inner)
    return parse_mailbox(inner)


def parse_domain(text: str) -> str:
    """A Domain (dot-separated labels, A- or U-labels) or an address literal, in canonical form.

    Labels are lower-cased; a U-label's length is counted in its A-label (`xn--…`)
    form, which is what the DNS limits.
    """
    if not text:
        raise AddressError("missing domain")
    if text.startswith("["):
        return _parse_literal(text)
    domain = text.lower()
    if domain.endswith("."):
        raise AddressError(f"domain {text!r} ends with a dot")
    octets = -1
    for label in domain.split("."):
        octets += 1 + _check_label(label, text)
    if octets > MAX_DOMAIN_OCTETS:
        raise AddressError(
            f"domain too long: {octets} octets (RFC 5321 allows at most {MAX_DOMAIN_OCTETS})"
        )
    return domain


def quote_local(local: str) -> str:
    """The local part as it is written in an address: quoted only when it must be."""
    if _is_dot_string(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def a_label(label: str) -> str:
    """The ASCII (A-label) form of one lower-case label; ASCII labels are returned unchanged."""
    if label.isascii():
        return label
    return "xn--" + unicodedata.normalize("NFC", label).encode("punycode").decode("ascii")


def _is_atext(ch: str) -> bool:
    if ch.isascii():
        return ch in _ATEXT
    # RFC 6531 admits any UTF-8 beyond ASCII; spaces of other scripts stay quoted, like ours.
    return unicodedata.category(ch)[0] not in "CZ"


def _is_dot_string(local: str) -> bool:
    return bool(local) and all(
        atom and all(_is_atext(ch) for ch in atom) for atom in local.split(".")
    )


def _check_local(local: str) -> None:
    for ch in local:
        code = ord(ch)
        if code < 32 or code == 127 or unicodedata.category(ch) in ("Cc", "Cs"):
            raise AddressError(f"local part: control or invalid character {ch!r}")
    octets = len(quote_local(local).encode("utf-8"))
    if octets > MAX_LOCAL_OCTETS:
        raise AddressError(
            f"local part too long: {octets} octets (RFC 5321 allows at most {MAX_LOCAL_OCTETS})"
        )


def _parse_quoted(text: str) -> tuple[str, int]:
    """The content of the Quoted-string at the start of text, and the index after it."""
    chars: list[str] = []
    i, n = 1, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(chars), i + 1
        if ch == "\\":
            if i + 1 == n:
                break
            escaped = text[i + 1]
            if not 32 <= ord(escaped) <= 126:
                raise AddressError(
                    "local part: a backslash must be followed by a printable ASCII character"
                )
            chars.append(escaped)
            i += 2
            continue
        chars.append(ch)
        i += 1
    raise AddressError('unterminated quoted local part (missing closing ")')


def _check_label(label: str, domain: str) -> int:
    """Validate one lower-cased label; returns its length in octets in A-label form."""
    if not label:
        raise AddressError(f"domain {domain!r} has an empty label")
    if label[0] == "-" or label[-1] == "-":
        raise AddressError(f"domain label {label!r} starts or ends with a hyphen")
    for ch in label:
        if ch.isascii():
            if ch not in _LDH:
                raise AddressError(f"domain label {label!r}: character {ch!r} is not allowed")
        elif unicodedata.category(ch)[0] not in "LMN":
            raise AddressError(f"domain label {label!r}: character {ch!r} is not allowed")
    octets = len(a_label(label))
    if octets > MAX_LABEL_OCTETS:
        raise AddressError(
            f"domain label too long: {label[:20]!r}… is {octets} octets "
            f"(at most {MAX_LABEL_OCTETS})"
        )
    return octets


def _parse_literal(text: str) -> str:
    if not text.endswith("]"):
        raise AddressError("address literal is missing its closing ]")
    inner = text[1:-1]
    tag, colon, rest = inner.partition(":")
    if not colon:
        try:
            return f"[{ipaddress.IPv4Address(inner)}]"
        except ValueError:
            raise AddressError(f"address literal [{inner}] is not an IPv4 address") from None
    if tag.lower() != "ipv6":
        raise AddressError(f"address literal tag {tag!r} is not supported (IPv4 or IPv6: only)")
    if "%" in rest:
        raise AddressError("address literal: an IPv6 zone (%…) is not allowed")
    try:
        return f"[IPv6:{ipaddress.IPv6Address(rest).compressed}]"
    except ValueError:
        raise AddressError(f"address literal [{inner}] is not an IPv6 address") from None


def _drop_source_route(text: str) -> str:
    """What follows the `@a,@b:` source route at the start of text, each domain checked."""
    i, n = 0, len(text)
    while i < n and text[i] == "@":
        if text.startswith("[", i + 1):
            end = text.find("]", i + 1)
            end = n if end == -1 else end + 1
        else:
            end = i + 1
            while end < n and text[end] not in ",:":
                end += 1
        try:
            parse_domain(text[i + 1 : end])
        except AddressError as exc:
            raise AddressError(f"source route: {exc}") from None
        if end < n and text[end] == ":":
            return text[end + 1 :]
        if end < n and text[end] == ",":
            i = end + 1
            continue
        break
    raise AddressError("source route must be @domain[,@domain…] followed by ':'")
