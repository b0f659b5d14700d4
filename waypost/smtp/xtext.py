"""RFC 3461 xtext, the encoding of the ORCPT and ENVID parameters."""

from __future__ import annotations

import re


class XtextError(ValueError):
    """Text that is not valid xtext."""


def _plain(c: str) -> bool:
    return "!" <= c <= "~" and c not in "+="


# RFC 3461 §4: xchar is "!" to "~" but "+" and "=", which stand for themselves.
_ALL_XCHARS = re.compile(r"[!-*,-<>-~]*")


def encode_xtext(text: str) -> str:
    """Every character outside `!`..`~`, and `+` and `=`, as `+HH` (UTF-8 octets)."""
    if _ALL_XCHARS.fullmatch(text):
        return text
    out = []
    for c in text:
        if _plain(c):
            out.append(c)
        else:
            out.extend(f"+{b:02X}" for b in c.encode())
    return "".join(out)


def decode_xtext(text: str) -> str:
    """The text an xtext stands for; raises XtextError for a malformed one."""
    raw = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "+":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or any(h not in "0123456789ABCDEF" for h in pair):
                raise XtextError(f"bad hexchar at offset {i} in {text!r}")
            raw.append(int(pair, 16))
            i += 3
        elif _plain(c):
            raw.append(ord(c))
            i += 1
        else:
            raise XtextError(f"character {c!r} at offset {i} is not allowed in xtext")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise XtextError(f"{text!r} does not decode to UTF-8") from None
