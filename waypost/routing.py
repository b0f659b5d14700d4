"""The routing table: which next hop each recipient goes to, and why (Exchange's GWART).

Built once from the configuration, which it validates entry by entry; `route()`
takes addresses from outside and never raises.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from waypost.address import (
    AddressError,
    Mailbox,
    ORAddress,
    is_oraddress_text,
    parse_domain,
    parse_mailbox,
    parse_oraddress,
    parse_path,
)
from waypost.address.oraddress import ATTRIBUTE_ORDER, BLANK_ADMD, fold_value
from waypost.nexthop import LOCAL, SMTP_PORT, NextHop, Transport, domain_key, parse_next_hop

_SHOWN = 200  # how much of an unparseable address an explanation repeats


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One configured route: `match` (domain, `.suffix`, `*` or O/R prefix) → `next_hop`."""

    match: str
    next_hop: str
    # The configuration key that made it, when not a `[[route]]` entry (`mixer.domain`).
    key: str | None = None


class RouteError(ValueError):
    """A bad routing entry; `key` names it as the configuration does (`route[2].next_hop`)."""

    def __init__(
        self, key: str, reason: str, index: int | None = None, field: str | None = None
    ) -> None:
        # All in args, so that the exception pickles and compares by value.
        super().__init__(key, reason, index, field)
        self.key = key
        self.reason = reason
        self.index = index
        self.field = field

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


REMEMBERED_DECISIONS = 4096


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an address goes: `next_hop` None means no route, and the last line says why.

    `explanation` is what `waypost route ADDRESS` prints: what was considered and
    why the winner won. `rule` names the configuration entry that decided.
    """

    address: str
    next_hop: NextHop | None
    explanation: tuple[str, ...]
    rule: str | None = None
    # Chosen by the default route '*': the SMTP server relays such mail only
    # for trusted clients, as it would for a domain it has no route for.
    by_default: bool = False


class RoutingTable:
    """Routes, local domains and local O/R prefixes, validated at construction.

    Mailboxes: a local domain → `local`; else the exact domain route, else the
    longest `.suffix` route, else `*`. O/R addresses: a local prefix → `local`;
    else the matching O/R prefix route that sets the most attributes (on a tie,
    the one naming the deeper attribute: C, ADMD, PRMD, O, OU1…). `*` is for
    mail domains only. A bad entry raises RouteError naming `route[N].match`,
    `route[N].next_hop`, `local.domains[N]` or `local.oraddresses[N]`;
    `RoutingTable.build` returns all of them instead.
    `x400_peers`, when given, are the MTA names an `x400:` next hop may name.
    """

    def __init__(
        self,
        routes: Iterable[RouteEntry] = (),
        local_domains: Iterable[str] = (),
        local_oraddresses: Iterable[str] = (),
        *,
        x400_peers: Collection[str] | None = None,
        local_hop: NextHop = LOCAL,
    ) -> None:
        self._local: dict[str, str] = {}
        # Where mailboxes of the local domains go: this machine's Maildirs (`local`), or a
        # message store's LMTP server that every node of a cluster reaches.
        self._local_hop = local_hop
        self._exact: dict[str, _Rule] = {}
        self._suffix: dict[str, _Rule] = {}  # keyed without the leading dot
        self._default: _Rule | None = None
        self._local_or = _PrefixIndex()
        self._or_routes = _PrefixIndex()
        self._decided: dict[str, Decision] = {}
        errors = self._add(routes, local_domains, local_oraddresses, x400_peers)
        if errors:
            raise errors[0]

    @classmethod
    def build(
        cls,
        routes: Iterable[RouteEntry] = (),
        local_domains: Iterable[str] = (),
        local_oraddresses: Iterable[str] = (),
        *,
        x400_peers: Collection[str] | None = None,
        local_hop: NextHop = LOCAL,
    ) -> tuple[RoutingTable, list[RouteError]]:
        """The table of the good entries and a RouteError for each bad one, in one pass.

        The errors are those the constructor raises the first of; a bad entry is
        left out, so it makes no duplicate of a later one.
        """
        table = cls(local_hop=local_hop)
        return table, table._add(routes, local_domains, local_oraddresses, x400_peers)

    def _add(
        self,
        routes: Iterable[RouteEntry],
        local_domains: Iterable[str],
        local_oraddresses: Iterable[str],
        x400_peers: Collection[str] | None,
    ) -> list[RouteError]:
        errors: list[RouteError] = []
        for i, text in enumerate(local_domains):
            key = f"local.domains[{i}]"
            try:
                domain = parse_domain(text.strip())
            except AddressError as exc:
                errors.append(RouteError(key, str(exc), i))
                continue
            self._local.setdefault(domain_key(domain), f"{key} {text.strip()!r}")
        local_prefixes: set[tuple[object, ...]] = set()
        for i, text in enumerate(local_oraddresses):
            key = f"local.oraddresses[{i}]"
            try:
                local_prefix = parse_oraddress(text)
            except AddressError as exc:
                errors.append(RouteError(key, f"not a valid O/R address prefix: {exc}", i))
                continue
            if _prefix_key(local_prefix) not in local_prefixes:
                local_prefixes.add(_prefix_key(local_prefix))
                self._local_or.add(f"{key} {text.strip()!r}", LOCAL, local_prefix)
        seen: dict[tuple[str, object], tuple[str, str]] = {}
        i = 0  # the [[route]] index: entries named by a key of their own have none
        for entry in routes:
            try:
                self._add_route(i, entry, seen, x400_peers)
            except RouteError as exc:
                errors.append(exc)
            if entry.key is None:
                i += 1
        self._local_or.freeze()
        self._or_routes.freeze()
        return errors

    def _add_route(
        self,
        i: int,
        entry: RouteEntry,
        seen: dict[tuple[str, object], tuple[str, str]],
        x400_peers: Collection[str] | None,
    ) -> None:
        """Add route `i`, or raise RouteError; `seen` holds the matches of those added."""
        match = entry.match.strip()
        base = entry.key or f"route[{i}]"
        try:
            kind, domain, prefix = _parse_match(match)
        except ValueError as exc:
            raise RouteError(entry.key or f"route[{i}].match", str(exc), i, "match") from None
        try:
            hop = parse_next_hop(entry.next_hop)
        except ValueError as exc:
            raise RouteError(f"{base}.next_hop", str(exc), i, "next_hop") from None
        if hop.transport == "x400" and x400_peers is not None and hop.destination not in x400_peers:
            known = ", ".join(sorted(x400_peers)) or "none"
            raise RouteError(
                f"{base}.next_hop",
                f"unknown X.400 peer {hop.destination!r} (configured: {known})",
                i,
                "next_hop",
            )
        if kind == "oraddress" and hop.mx_lookup and not hop.destination:
            raise RouteError(
                f"{base}.next_hop",
                "'smtp:' looks up the MX of the recipient's domain, which an O/R address "
                "does not have; name a host: 'smtp:[host]' or 'smtp:host'",
                i,
                "next_hop",
            )
        match_key = (kind, domain) if prefix is None else (kind, _prefix_key(prefix))
        if match_key in seen:
            first, first_match = seen[match_key]
            raise RouteError(
                entry.key or f"route[{i}].match",
                f"duplicate of {first} ({first_match!r})",
                i,
                "match",
            )
        seen[match_key] = (base, match)
        name = f"{base} {match!r}"
        if prefix is not None:
            self._or_routes.add(name, hop, prefix)
        elif kind == "default":
            self._default = _Rule(name, hop)
        elif kind == "suffix":
            self._suffix[domain] = _Rule(name, hop)
        else:
            self._exact[domain] = _Rule(name, hop)

    def is_local_domain(self, domain: str) -> bool:
        """Whether mail for this domain is delivered here (False for a malformed domain)."""
        try:
            return domain_key(parse_domain(domain)) in self._local
        except AddressError:
            return False

    def route(self, address: str) -> Decision:
        """The decision for one recipient address (a mailbox, a `<path>` or an O/R address).
        The table never changes once built, so a decision is remembered (up to
        REMEMBERED_DECISIONS): most mail goes to addresses that came before, and parsing
        and explaining each one again costs more than anything else in routing it."""
        decision = self._decided.get(address)
        if decision is None:
            decision = self._decide(address)
            if len(self._decided) >= REMEMBERED_DECISIONS:
                self._decided.clear()  # a bound, not an LRU: cheap, and refilled at once
            self._decided[address] = decision
        return decision

    def _decide(self, address: str) -> Decision:
        looks_or = False
        try:
            if address.startswith("<"):
                mailbox = parse_path(address)
                if mailbox is None:
                    return _no_route(address, "<> is the null reverse path, not a recipient")
                return self._route_mailbox(mailbox)
            looks_or = is_oraddress_text(address)
            if looks_or:
                return self._route_oraddress(parse_oraddress(address))
            return self._route_mailbox(parse_mailbox(address))
        except ValueError as exc:  # AddressError, or anything else a hostile text provokes
            kind = "an X.400 O/R address" if looks_or else "a mailbox"
            shown = address if len(address) <= _SHOWN else address[:_SHOWN] + "…"
            return _no_route(address, f"{shown!r} is not {kind}: {exc}")

    def _route_mailbox(self, mailbox: Mailbox) -> Decision:
        canonical = str(mailbox)
        domain = mailbox.domain
        lines = [f"{canonical}: RFC 5321 mailbox, domain {domain}"]
        key = domain_key(domain)
        local = self._local.get(key)
        if local is not None:
            lines.append(f"domain {domain} is local ({local})")
            hop = self._local_hop
            lines.append(f"chosen: {hop}{_note(hop)}")
            return Decision(canonical, hop, tuple(lines), rule=local)
        lines.append(f"domain {domain} is not local")

        candidates: list[tuple[_Rule, str]] = []
        exact = self._exact.get(key)
        if exact is not None:
            candidates.append((exact, "exact"))
        if not key.startswith("["):
            labels = key.split(".")
            for i in range(1, len(labels)):
                suffix = ".".join(labels[i:])
                rule = self._suffix.get(suffix)
                if rule is not None:
                    candidates.append((rule, f"suffix, {len(suffix) + 1} chars"))
        if self._default is not None:
            candidates.append((self._default, "default"))
        if not candidates:
            lines.append(f"no route: nothing matches {domain} and there is no default route '*'")
            return Decision(canonical, None, tuple(lines))

        winner = candidates[0][0]
        lines.append(f"{winner.name} matches ({candidates[0][1]})")
        lines.extend(
            f"{rule.name} also matches ({how}) but is less specific" for rule, how in candidates[1:]
        )
        hop = winner.next_hop
        own_domain = hop.mx_lookup and not hop.destination
        if own_domain:
            hop = _own_domain(key)
        lines.append(f"chosen: {hop}{_note(hop, recipient_domain=own_domain)}")
        return Decision(
            canonical, hop, tuple(lines), rule=winner.name, by_default=winner is self._default
        )

    def _route_oraddress(self, address: ORAddress) -> Decision:
        canonical = str(address)
        lines = [f"{canonical}: X.400 O/R address"]
        for index, destination in ((self._local_or, "local"), (self._or_routes, "route")):
            found = index.matches(address)
            if not found:
                if destination == "local":
                    lines.append("not under any local O/R prefix")
                continue
            best = found[0]
            lines.append(f"{best.name} matches (O/R prefix, {_count(best.prefix)})")
            for other in found[1:]:
                if other.prefix.specificity < best.prefix.specificity:
                    why = "but is less specific"
                else:
                    why = "but names a shallower attribute (C, ADMD, PRMD, O, OU… in that order)"
                count = _count(other.prefix)
                lines.append(f"{other.name} also matches (O/R prefix, {count}) {why}")
            lines.append(f"chosen: {best.next_hop}{_note(best.next_hop)}")
            return Decision(canonical, best.next_hop, tuple(lines), rule=best.name)
        lines.append("no route: no O/R prefix matches (the default route '*' is for mail domains)")
        return Decision(canonical, None, tuple(lines))


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    next_hop: NextHop


_Rank = tuple[int, tuple[int, ...], str]


@dataclass(frozen=True, slots=True)
class _Prefix:
    name: str
    next_hop: NextHop
    prefix: ORAddress
    rank: _Rank  # smaller is better; see _rank()


def _rank(prefix: ORAddress) -> _Rank:
    """Best first: more attributes, then the deeper attribute, then the text (for a total order)."""
    depths = sorted(
        (
            ATTRIBUTE_ORDER.index(key) if not key.startswith("DDA:") else len(ATTRIBUTE_ORDER)
            for key, value in prefix.attributes()
            if not (key == "ADMD" and value == BLANK_ADMD)
        ),
        reverse=True,
    )
    return (-prefix.specificity, tuple(-depth for depth in depths), str(prefix).lower())


class _PrefixIndex:
    """O/R prefixes by (country, ADMD), so that route() looks at one country's prefixes only."""

    def __init__(self) -> None:
        self._by_domain: dict[tuple[str, str], list[_Prefix]] = {}

    def add(self, name: str, next_hop: NextHop, prefix: ORAddress) -> None:
        key = (fold_value(prefix.country), fold_value(prefix.admd))
        self._by_domain.setdefault(key, []).append(_Prefix(name, next_hop, prefix, _rank(prefix)))

    def freeze(self) -> None:
        for prefixes in self._by_domain.values():
            prefixes.sort(key=_by_rank)

    def matches(self, address: ORAddress) -> list[_Prefix]:
        """Every prefix the address is under, best first."""
        country, admd = fold_value(address.country), fold_value(address.admd)
        keys = [(country, admd)] if not admd else [(country, admd), (country, "")]
        found = [
            prefix
            for key in keys
            for prefix in self._by_domain.get(key, ())
            if address.matches_prefix(prefix.prefix)
        ]
        if len(keys) > 1:
            found.sort(key=_by_rank)
        return found


def _by_rank(prefix: _Prefix) -> _Rank:
    return prefix.rank


def _parse_match(match: str) -> tuple[str, str, ORAddress | None]:
    """(kind, domain key or "", O/R prefix or None) for a route's match."""
    if not match:
        raise ValueError("empty (expected a domain, .domain, * or an O/R address prefix)")
    if match == "*":
        return "default", "", None
    if match.startswith("*."):
        raise ValueError(
            f"{match!r} is not a pattern here: write {match[1:]!r} for the subdomains of "
            f"{match[2:]!r} (and {match[2:]!r} for the domain itself)"
        )
    if is_oraddress_text(match):
        try:
            prefix = parse_oraddress(match)
        except AddressError as exc:
            raise ValueError(f"not a valid O/R address prefix: {exc}") from None
        return "oraddress", "", prefix
    if "@" in match:
        raise ValueError(f"{match!r}: routes match domains, not mailboxes")
    if match.startswith("."):
        if match[1:].startswith("["):
            raise ValueError("an address literal has no subdomains; match it exactly")
        return "suffix", domain_key(parse_domain(match[1:])), None
    return "exact", domain_key(parse_domain(match)), None


def _prefix_key(prefix: ORAddress) -> tuple[object, ...]:
    """Equal for prefixes that match the same addresses (X.411 comparison)."""
    standard = tuple(
        (key, fold_value(value)) for key, value in prefix.attributes() if not key.startswith("DDA:")
    )
    ddas = frozenset((fold_value(t), fold_value(v)) for t, v in prefix.ddas)
    return standard, ddas


def _own_domain(key: str) -> NextHop:
    """`smtp:` for this domain: its MX, or straight to the host of an address literal."""
    if not key.startswith("["):
        return NextHop(Transport.SMTP, key)
    literal = key[1:-1]
    host = literal[5:] if literal[:5].lower() == "ipv6:" else literal
    return NextHop(Transport.SMTP, host, SMTP_PORT)


def _no_route(address: str, reason: str) -> Decision:
    return Decision(address, None, (f"no route: {reason}",))


def _count(prefix: ORAddress) -> str:
    n = prefix.specificity
    return f"{n} attribute" if n == 1 else f"{n} attributes"


def _note(hop: NextHop, *, recipient_domain: bool = False) -> str:
    if hop.transport == "local":
        return " (delivered here)"
    if hop.transport == "lmtp":
        return " (delivered into the message store by LMTP)"
    if hop.transport == "x400":
        return " (an adjacent X.400 MTA)"
    if hop.transport == "error":
        return " (the recipient is refused with this text)"
    if hop.transport == "gateway":
        return " (converted for the other world and submitted again)"
    if hop.mx_lookup:
        whose = "the recipient's domain" if recipient_domain else hop.destination
        return f" (MX lookup of {whose})"
    if recipient_domain:
        return " (the host of the address literal, no MX lookup)"
    return " (that host, no MX lookup)"
