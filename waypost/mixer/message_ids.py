"""IPM identifiers ⇄ RFC 5322 msg-ids as RFC 2156 maps them, with RFC 2156's encoding of
ASCII in PrintableString that carries a msg-id inside a user-relative identifier."""

from __future__ import annotations

import re

from waypost.x400.ipm_heading import IPMIdentifier

# RFC 2156 §3.4: characters of PrintableString stand for themselves, except the
# parentheses, which open escapes; these ASCII characters have a mnemonic escape and
# any other is written as "(ddd)", its decimal code.
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '+,-./:=?")
_MNEMONIC = {"@": "a", "%": "p", "!": "b", '"': "q", "_": "u", "(": "l", ")": "r"}
_FROM_MNEMONIC = {v: k for k, v in _MNEMONIC.items()}
_ESCAPE = re.compile(r"\(([apbqulr]|\d{3})\)")
# Each ASCII character outside PrintableString, by code point, to its escape: one
# str.translate writes a whole identifier.
_ESCAPES = {
    code: f"({_MNEMONIC[char]})" if char in _MNEMONIC else f"({code:03d})"
    for code, char in ((code, chr(code)) for code in range(128))
    if char not in _PRINTABLE
}

# RFC 5322 §3.6.4: msg-id = "<" id-left "@" id-right ">", dot-atom-text on both sides
# (the obsolete and literal forms are not produced by the encoding below).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_PLAIN_ID = re.compile(rf"{_DOT_ATOM}@{_DOT_ATOM}")
_ANGLED = re.compile(r"<([^<>]*)>")
# The separator between the user-relative identifier and the user's O/R address in a
# msg-id the gateway makes; "*" is in neither PrintableString nor the escapes.
_SEPARATOR = "*"


class MessageIdError(ValueError):
    """A msg-id field that cannot be read; names the header and the reason."""


def printable_escape(text: str) -> str:
    """ASCII text as PrintableString, escaped as RFC 2156 §3.4 says."""
    if text.isascii():
        return text.translate(_ESCAPES)
    out = []  # to name the character that cannot be written
    for char in text:
        if char in _PRINTABLE:
            out.append(char)
        elif char in _MNEMONIC:
            out.append(f"({_MNEMONIC[char]})")
        elif ord(char) < 128:
            out.append(f"({ord(char):03d})")
        else:
            raise ValueError(f"{char!r} is not ASCII and has no PrintableString escape")
    return "".join(out)


def printable_unescape(text: str) -> str:
    """The ASCII text a PrintableString escaped by RFC 2156 §3.4 stands for."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return _FROM_MNEMONIC[code] if code in _FROM_MNEMONIC else chr(int(code) % 128)

    return _ESCAPE.sub(one, text)


def _came_from_822(identifier: IPMIdentifier) -> str | None:
    """The msg-id an identifier carries when a gateway made it from one, else None."""
    if identifier.user is not None:
        return None
    candidate = printable_unescape(identifier.local)
    if _PLAIN_ID.fullmatch(candidate) and printable_escape(candidate) == identifier.local:
        return candidate
    return None


def ipm_id_to_msg_id(identifier: IPMIdentifier, gateway_domain: str) -> str:
    """RFC 2156 (message identifiers): an identifier that carries an encoded msg-id gives
    that msg-id back; any other is encoded as a quoted local part at the gateway's domain,
    so the reverse mapping restores it exactly."""
    plain = _came_from_822(identifier)
    if plain is not None:
        return f"<{plain}>"
    user = identifier.user or ""
    return f'<"{identifier.local}{_SEPARATOR}{user}"@{gateway_domain}>'


def msg_id_to_ipm_id(msg_id: str, gateway_domain: str) -> IPMIdentifier:
    """The reverse of ipm_id_to_msg_id: a msg-id the gateway made gives back the X.400
    identifier; any other is carried, escaped, as a user-relative identifier."""
    inner = msg_id.strip()
    if inner.startswith("<") and inner.endswith(">"):
        inner = inner[1:-1]
    left, at, right = inner.rpartition("@")
    if not at or not left or not right:
        raise MessageIdError(f"{msg_id!r}: not a msg-id (left@right)")
    if right.lower() == gateway_domain.lower() and left.startswith('"') and left.endswith('"'):
        local, sep, user = left[1:-1].partition(_SEPARATOR)
        if sep:
            return IPMIdentifier(user=user or None, local=local)
    try:
        return IPMIdentifier(user=None, local=printable_escape(inner))
    except ValueError as error:
        raise MessageIdError(f"{msg_id!r}: {error}") from None


def msg_ids_in(header_name: str, value: str) -> list[str]:
    """The msg-ids of an In-Reply-To / References style field, in order; words between
    them (RFC 822 allowed phrases in In-Reply-To) are skipped."""
    found = _ANGLED.findall(value)
    if value.strip() and not found:
        raise MessageIdError(f"{header_name}: {value!r} holds no <msg-id>")
    return [f"<{one}>" for one in found]
