"""The text forms configuration values are written in: host names, `host:port`, selectors."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def is_domain_name(name: str) -> bool:
    """A host or mail domain name in its ASCII (A-label) form, any case."""
    if not name or len(name) > 253:
        return False
    labels = name.lower().split(".")
    # An all-numeric last label is a mistyped IP address, never a name (RFC 3696 §2).
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` or `[ipv6]:port` → (host, port); ValueError says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: an IPv6 address goes in brackets, as in [::1]:2525")
    else:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not is_domain_name(host):
                raise ValueError(
                    f"{text!r}: {host!r} is neither an IP address nor a host name"
                ) from None
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not (digits and 1 <= int(port_text) <= 65535):
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def selector_bytes(text: str) -> bytes:
    """A T/S/P selector as written in the configuration: text, or `hex:` and hex digits."""
    if text.startswith("hex:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError:
            raise ValueError(f"{text!r}: after 'hex:' come pairs of hex digits") from None
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{text!r}: a selector is ASCII text, or hex:…") from None
