"""Next hops: where a recipient goes after this MTA, parsed once from its text form
(`local`, `smtp:[host]:port`, `lmtp:[host]:port`, `lmtp:unix:/path`, `x400:MTA`,
`aftn:STATION`, `error:text`) and carried typed from then on."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from waypost.address import AddressError, parse_domain
from waypost.address.mailbox import a_label


class Transport(enum.StrEnum):
    """The delivery agent a next hop names."""

    LOCAL = "local"
    SMTP = "smtp"
    LMTP = "lmtp"
    X400 = "x400"
    AFTN = "aftn"
    GATEWAY = "gateway"
    ERROR = "error"


# The gateways a `gateway:NAME` next hop may name.
GATEWAYS = ("mixer",)


TRANSPORTS = tuple(t.value for t in Transport)
SMTP_PORT = 25
# No port is assigned to LMTP (RFC 2033 §5 forbids port 25); 24 is what message stores
# (Dovecot, Cyrus) listen on by custom.
LMTP_PORT = 24


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where a recipient goes next; `str()` is the key the queue groups recipients by.

    * `local`: delivered here.
    * `smtp` with a port: connect to `destination` (host name or IP address), no MX lookup.
    * `smtp` without a port: MX lookup of `destination` (port 25).
    * `lmtp`: a message store's LMTP server (RFC 2033), at `destination` and `port`, or
      with no port at the UNIX socket whose path is `destination`; final delivery.
    * `x400`: `destination` is an adjacent MTA, configured elsewhere.
    * `aftn`: `destination` is an AFTN station ([[amhs.peer]]): the AFTN/AMHS gateway
      converts the AMHS message to AFTN and sends it there; final delivery on the AMHS side.
    * `gateway`: `destination` names the gateway (`mixer`: X.400 ⇄ Internet mail) that
      converts the message for the other world and submits it again.
    * `error`: refuse the recipient with the text in `destination`.
    """

    transport: Transport
    destination: str = ""
    port: int | None = None

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {self.transport!r}")
        # A plain string names the same transport; kept as the enum so a match is exhaustive.
        object.__setattr__(self, "transport", Transport(self.transport))
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not from 1 to 65535")

    def __str__(self) -> str:
        if self.transport == "local":
            return "local"
        if self.transport == "smtp" and self.port is not None:
            return f"smtp:[{self.destination}]:{self.port}"
        if self.transport == "lmtp":
            if self.port is None:
                return f"lmtp:unix:{self.destination}"
            return f"lmtp:[{self.destination}]:{self.port}"
        return f"{self.transport}:{self.destination}"

    @property
    def final(self) -> bool:
        """Whether the recipient is delivered into its mailbox by this hop (no MTA after it):
        a success is then "delivered", not "relayed" (RFC 3464 §2.3.3)."""
        return self.transport in (Transport.LOCAL, Transport.LMTP, Transport.AFTN)

    @property
    def mx_lookup(self) -> bool:
        """Whether the SMTP client looks up the MX records of `destination`."""
        return self.transport == "smtp" and self.port is None


LOCAL = NextHop(Transport.LOCAL)


def parse_next_hop(text: str) -> NextHop:
    """Parse `local`, `smtp:`, `smtp:host`, `smtp:[host]`, `smtp:[host]:port`, `x400:NAME`,
    `gateway:mixer` or `error:text`; raises ValueError with the reason.

    An IPv6 host is written in brackets, with or without the RFC 5321 tag:
    `smtp:[::1]:2526` and `smtp:[IPv6:::1]:2526` are the same next hop.
    """
    spec = text.strip()
    if not spec:
        raise ValueError("empty (expected local, smtp:…, x400:…, aftn:…, gateway:… or error:…)")
    transport, colon, rest = spec.partition(":")
    transport = transport.strip().lower()
    rest = rest.strip()
    if transport == "local":
        if rest:
            raise ValueError(f"'local' takes no destination, got {rest!r}")
        return LOCAL
    if transport == "smtp":
        if not colon:
            raise ValueError(
                "write 'smtp:' (MX of the recipient's domain), 'smtp:host' (MX of host) "
                "or 'smtp:[host]:port' (that host)"
            )
        return _parse_smtp(rest)
    if transport == "lmtp":
        return _parse_lmtp(rest)
    if transport == "x400":
        if not rest:
            raise ValueError("x400 needs the name of an adjacent MTA: 'x400:NAME'")
        if not rest.isascii() or any(not ch.isprintable() or ch.isspace() for ch in rest):
            raise ValueError(f"X.400 MTA name {rest!r} must be printable ASCII without spaces")
        return NextHop(Transport.X400, rest)
    if transport == "aftn":
        if not rest:
            raise ValueError("aftn needs the name of an AFTN station: 'aftn:NAME'")
        if not rest.isascii() or any(not ch.isprintable() or ch.isspace() for ch in rest):
            raise ValueError(f"AFTN station name {rest!r} must be printable ASCII without spaces")
        return NextHop(Transport.AFTN, rest)
    if transport == "gateway":
        if rest.lower() not in GATEWAYS:
            raise ValueError(f"gateway needs one of {', '.join(GATEWAYS)}: 'gateway:mixer'")
        return NextHop(Transport.GATEWAY, rest.lower())
    if transport == "error":
        if not rest:
            raise ValueError("error needs the text to refuse with, e.g. 'error:no such domain'")
        if not rest.isprintable():
            raise ValueError("error text must be printable (it goes into SMTP replies)")
        return NextHop(Transport.ERROR, rest)
    raise ValueError(
        f"unknown transport {transport!r} "
        "(expected local, smtp:…, x400:…, aftn:…, gateway:… or error:…)"
    )


def domain_key(domain: str) -> str:
    """The form domains are compared in: lower case, A-labels (`xn--…`); literals as they are."""
    if domain.startswith("["):
        return domain
    return ".".join(a_label(label) for label in domain.lower().split("."))


def _parse_smtp(rest: str) -> NextHop:
    if not rest:
        return NextHop(Transport.SMTP)  # the recipient's own domain, filled in by route()
    if rest.startswith("["):
        close = rest.find("]")
        if close == -1:
            raise ValueError(f"'smtp:{rest}': missing ']' after the host")
        host = _bracketed_host(rest[1:close])
        tail = rest[close + 1 :]
        if not tail:
            return NextHop(Transport.SMTP, host, SMTP_PORT)
        digits = tail[1:]
        if tail[0] != ":" or not (digits.isascii() and digits.isdigit()):
            raise ValueError(f"'smtp:{rest}': after ']' expected ':port', got {tail!r}")
        if not 1 <= int(digits) <= 65535:
            raise ValueError(f"port {digits} must be a number from 1 to 65535")
        return NextHop(Transport.SMTP, host, int(digits))
    if ":" in rest:
        raise ValueError(
            f"'smtp:{rest}': a port needs the host in brackets, 'smtp:[host]:port' "
            "(an MX lookup always uses port 25)"
        )
    try:
        ipaddress.ip_address(rest)
    except ValueError:
        pass
    else:
        raise ValueError(f"write an IP address in brackets: 'smtp:[{rest}]'")
    return NextHop(Transport.SMTP, _host_name(rest))


def _parse_lmtp(rest: str) -> NextHop:
    """`lmtp:unix:/path`, `lmtp:[host]:port` or `lmtp:[host]` (port 24); never an MX lookup."""
    if rest[:5].lower() == "unix:":
        path = rest[5:].strip()
        if not path.startswith("/") or not path.isprintable():
            raise ValueError(f"'lmtp:{rest}': a UNIX socket needs an absolute path, 'lmtp:unix:/…'")
        return NextHop(Transport.LMTP, path)
    if not rest.startswith("["):
        raise ValueError(f"'lmtp:{rest}': write 'lmtp:[host]:port' or 'lmtp:unix:/path/to/socket'")
    hop = _parse_smtp(rest)  # the same [host]:port, with SMTP's checks
    port = LMTP_PORT if rest.endswith("]") else hop.port
    return NextHop(Transport.LMTP, hop.destination, port)


def _bracketed_host(inner: str) -> str:
    if inner[:5].lower() == "ipv6:" or ":" in inner:
        text = inner[5:] if inner[:5].lower() == "ipv6:" else inner
        try:
            return ipaddress.IPv6Address(text).compressed
        except ValueError:
            raise ValueError(f"[{inner}] is not an IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(inner))
    except ValueError:
        return _host_name(inner)


def _host_name(text: str) -> str:
    try:
        return domain_key(parse_domain(text))
    except AddressError as exc:
        raise ValueError(f"host {text!r}: {exc}") from None
