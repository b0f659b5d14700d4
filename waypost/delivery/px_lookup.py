"""MIXER mapping entries looked up in DNS (RFC 2163 PX records) for the gateway: both trees,
the longest match, answers kept for their TTL (capped), a failed lookup told from none."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdtypes.IN.PX import PX

from waypost import events
from waypost.address.oraddress import ORAddress, format_slash
from waypost.clock import Clock, SystemClock
from waypost.mixer.address_map import MappingEntry
from waypost.mixer.px import (
    PxError,
    PxRecord,
    domain_tree_names,
    entry_for_domain,
    entry_for_oraddress,
    x400_tree_names,
)

DEFAULT_PORT = 53
MAX_CACHED_NAMES = 10_000  # one gateway sees few domains; this bounds a flood of new ones


class PxLookupError(Exception):
    """DNS gave no answer (SERVFAIL, REFUSED, a timeout): whether a mapping exists is not
    known, so the message waits and is tried again, as an MX lookup failure does."""

    status = "4.4.3"  # RFC 3463: directory server failure

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{self.status} PX lookup of {name} failed: {detail}")
        self.name = name
        self.detail = detail


@dataclass(slots=True)
class _Cached:
    expires: float
    records: tuple[PxRecord, ...]
    warned: bool = False


class PxLookup:
    """RFC 2163 lookups: a mail domain's entry in the RFC 822 tree, an O/R address's in the
    X.400 tree below x400_root ("." or "": the Internet's root, as RFC 2163 publishes it).

    Each answer, records or none, is kept for its TTL (a negative answer for its SOA's
    negative TTL, RFC 2308 §5), never longer than max_cache_seconds.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        x400_root: str = ".",
        max_cache_seconds: float = 3600.0,
        clock: Clock | None = None,
    ) -> None:
        self._resolver = resolver
        self.x400_root = parse_x400_root(x400_root)
        self.max_cache_seconds = max_cache_seconds
        self._clock: Clock = clock or SystemClock()
        self._cache: dict[dns.name.Name, _Cached] = {}

    @classmethod
    def with_nameservers(
        cls,
        nameservers: Sequence[str] = (),
        *,
        x400_root: str = ".",
        max_cache_seconds: float = 3600.0,
        timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> PxLookup:
        """A lookup that asks the given nameservers (`192.0.2.1`, `192.0.2.1:5353`,
        `[2001:db8::1]:53`), or the system's (/etc/resolv.conf) when none are given;
        timeout bounds each lookup. Raises ValueError for a bad nameserver or root."""
        try:
            resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        except dns.exception.DNSException as exc:
            raise ValueError(f"no nameservers given and none configured: {exc}") from None
        if nameservers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*parse_nameserver(text)) for text in nameservers
            ]
        resolver.lifetime = timeout
        resolver.timeout = min(timeout, 2.0)  # per try; a silent server's turn passes on
        return cls(resolver, x400_root=x400_root, max_cache_seconds=max_cache_seconds, clock=clock)

    async def domain_entry(self, domain: str) -> MappingEntry | None:
        """The entry that maps domain (or the domain above it that the longest match finds)
        to an O/R prefix, or None. Raises PxLookupError."""
        for owner in domain_tree_names(domain):
            try:
                name = dns.name.from_text(owner)
            except dns.exception.DNSException:
                continue  # a U-label IDNA cannot encode: no such name in DNS
            cached = await self._lookup(name)
            if not cached.records:
                continue
            try:
                return entry_for_domain(domain, cached.records)
            except PxError as exc:
                self._warn(cached, name, domain, exc)
                return None
        return None

    async def oraddress_entry(self, address: ORAddress) -> MappingEntry | None:
        """The entry that maps the longest prefix of address found in the X.400 tree to a
        domain, or None. Raises PxLookupError."""
        for labels in x400_tree_names(address, self.x400_root):
            name = dns.name.Name([label.encode("ascii") for label in labels] + [b""])
            cached = await self._lookup(name)
            if not cached.records:
                continue
            try:
                return entry_for_oraddress(address, cached.records)
            except PxError as exc:
                self._warn(cached, name, format_slash(address), exc)
                return None
        return None

    async def _lookup(self, name: dns.name.Name) -> _Cached:
        now = self._clock.now()
        cached = self._cache.get(name)
        if cached is not None and cached.expires > now:
            return cached
        records, ttl = await self._query(name)
        cached = _Cached(now + min(ttl, self.max_cache_seconds), records)
        self._cache.pop(name, None)
        if len(self._cache) >= MAX_CACHED_NAMES:
            del self._cache[next(iter(self._cache))]  # the oldest answer goes first
        self._cache[name] = cached
        return cached

    async def _query(self, name: dns.name.Name) -> tuple[tuple[PxRecord, ...], float]:
        try:
            answer = await self._resolver.resolve(
                name, dns.rdatatype.PX, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as exc:
            # No such name: the walk goes on up the tree; kept for the negative TTL.
            replies: dict[dns.name.Name, dns.message.QueryMessage] = exc.kwargs.get("responses", {})
            ttls = (reply.resolve_chaining().minimum_ttl for reply in replies.values())
            return (), min(ttls, default=0)
        except dns.exception.DNSException as exc:
            # SERVFAIL and REFUSED from every server (NoNameservers), timeouts: unknown.
            raise PxLookupError(name.to_text(), str(exc) or type(exc).__name__) from None
        if answer.rrset is None:
            return (), answer.chaining_result.minimum_ttl
        records = tuple(_record(rdata) for rdata in answer.rrset if isinstance(rdata, PX))
        return records, answer.chaining_result.minimum_ttl

    def _warn(self, cached: _Cached, name: dns.name.Name, address: str, exc: PxError) -> None:
        if cached.warned:
            return  # once per answer fetched, not once per message
        cached.warned = True
        events.emit(events.PX_RECORD_UNUSABLE, name=name.to_text(), address=address, error=exc)


def parse_nameserver(text: str) -> tuple[str, int]:
    """`192.0.2.1`, `192.0.2.1:5353`, `2001:db8::1` or `[2001:db8::1]:5353` → (address,
    port); raises ValueError saying what is wrong."""
    host, port = text.strip(), DEFAULT_PORT
    if host.startswith("["):
        host, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"nameserver {text!r}: write an IPv6 address and port as [addr]:port")
        if rest:
            port = _port(text, rest[1:])
    elif host.count(":") == 1:
        host, _, rest = host.partition(":")
        port = _port(text, rest)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ValueError(f"nameserver {text!r}: {host!r} is not an IP address") from None


def parse_x400_root(text: str) -> tuple[str, ...]:
    """The labels of the domain below which the X.400 tree hangs ("." or "": none, the tree
    is in the Internet's own, as RFC 2163 publishes it); raises ValueError."""
    if text.strip() in {"", "."}:
        return ()
    try:
        name = dns.name.from_text(text.strip())
        labels = tuple(label.decode("ascii") for label in name.labels[:-1])
    except (dns.exception.DNSException, UnicodeDecodeError) as exc:
        raise ValueError(f"X.400 root {text!r} is not a domain name: {exc}") from None
    if not all(labels):
        raise ValueError(f"X.400 root {text!r} has an empty label")
    return labels


def _port(text: str, digits: str) -> int:
    if not digits.isdigit() or not 0 < int(digits) < 65536:
        raise ValueError(f"nameserver {text!r}: port {digits!r} is not a number from 1 to 65535")
    return int(digits)


def _record(rdata: PX) -> PxRecord:
    # Labels are bytes in DNS; a byte that is no ASCII becomes U+FFFD, which no O/R value
    # nor domain accepts, so such a record is refused with a reason rather than misread.
    def labels(name: dns.name.Name) -> tuple[str, ...]:
        return tuple(label.decode("ascii", "replace") for label in name.labels if label)

    return PxRecord(rdata.preference, labels(rdata.map822), labels(rdata.mapx400))
