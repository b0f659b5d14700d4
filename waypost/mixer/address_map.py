"""RFC 2156 §4 address mapping between X.400 O/R addresses and RFC 822 mailboxes: the
mapping tables (longest match, each direction its own table) and the gateway fallbacks."""

from __future__ import annotations

import enum
import string
from collections.abc import Iterable
from dataclasses import dataclass, replace

from waypost.address.mailbox import AddressError, Mailbox, parse_domain, parse_mailbox
from waypost.address.oraddress import (
    ORAddress,
    fold_value,
    format_slash,
    parse_oraddress,
    slash_items,
)

# The attributes a mapping table entry may hold: RFC 2156 Appendix F's tables map domains to
# the hierarchical part of an O/R address only (C, ADMD, PRMD, O, OU).
_TABLE_KEYS = frozenset({"C", "ADMD", "PRMD", "O", "OU1", "OU2", "OU3", "OU4"})
# The subdomains below a matched domain stand for the next of these, in this order
# (RFC 2156 §4.3.4 and §4.3.5: O, then each OU, one per domain label).
_LABEL_KEYS = ("O", "OU1", "OU2", "OU3", "OU4")
_LDH = frozenset(string.ascii_letters + string.digits + "-")
# Characters a personal-name local part (RFC 2156 §4.3.4, EBNF.pn) may hold: what is both an
# RFC 822 atom character and a PrintableString character needing no escape.
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "-'")
RFC822_DDA = "RFC-822"  # RFC 2156 §4.2.1: the DDA type that carries a mail address


class MappingError(AddressError):
    """An address that the RFC 2156 mapping cannot carry across; the message says why."""


class MappingRule(enum.StrEnum):
    """Which RFC 2156 rule made a mapping: what `waypost route` shows."""

    # X.400 → RFC 822
    TABLE_PERSONAL_NAME = "table: O/R prefix → domain, personal name as Given.I.Surname"
    TABLE_ATTRIBUTES = "table: O/R prefix → domain, other attributes in the local part"
    TABLE_RFC822_DDA = "table: O/R prefix with an RFC-822 DDA → that mail address"
    GATEWAY_RFC822_DDA = "gateway O/R address with an RFC-822 DDA → that mail address"
    GATEWAY_LOCAL_PART = "no table entry: the O/R address as the local part at the gateway"
    # RFC 822 → X.400
    DOMAIN_PERSONAL_NAME = "table: domain → O/R prefix, local part as a personal name"
    DOMAIN_ATTRIBUTES = "table: domain → O/R prefix, local part holds O/R attributes"
    DOMAIN_RFC822_DDA = "table: domain → O/R prefix, mail address in an RFC-822 DDA"
    LOCAL_PART_ORADDRESS = "gateway domain: the local part is the O/R address"
    GATEWAY_DDA = "no table entry: the mail address in an RFC-822 DDA at the gateway"


@dataclass(frozen=True, slots=True)
class MappingEntry:
    """One table line: an O/R prefix (C, ADMD, PRMD, O, OU only) and a mail domain."""

    prefix: ORAddress
    domain: str

    def __post_init__(self) -> None:
        extra = [key for key, _ in self.prefix.attributes() if key not in _TABLE_KEYS]
        if extra:
            raise MappingError(
                f"mapping entry {format_slash(self.prefix)}: only C, ADMD, PRMD, O and OU may "
                f"be mapped to a domain (RFC 2156 Appendix F), not {', '.join(extra)}"
            )
        object.__setattr__(self, "domain", parse_domain(self.domain))

    def __str__(self) -> str:
        return f"{format_slash(self.prefix)} ⇄ {self.domain}"

    @classmethod
    def parse(cls, prefix: str, domain: str) -> MappingEntry:
        """An entry from its two texts: the MCGAM O/R form and the domain."""
        return cls(parse_oraddress(prefix), domain)


@dataclass(frozen=True, slots=True)
class Gateway:
    """The gateway itself: its mail domain and its O/R address, used by the fallbacks."""

    domain: str
    oraddress: ORAddress

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", parse_domain(self.domain))


@dataclass(frozen=True, slots=True)
class ToRfc822:
    """An O/R address mapped to a mailbox, with the rule and table entry that made it."""

    mailbox: Mailbox
    rule: MappingRule
    entry: MappingEntry | None = None

    def explain(self) -> str:
        via = f" [{self.entry}]" if self.entry else ""
        return f"{self.mailbox}: {self.rule.value}{via}"


@dataclass(frozen=True, slots=True)
class ToX400:
    """A mailbox mapped to an O/R address, with the rule and table entry that made it."""

    oraddress: ORAddress
    rule: MappingRule
    entry: MappingEntry | None = None

    def explain(self) -> str:
        via = f" [{self.entry}]" if self.entry else ""
        return f"{format_slash(self.oraddress)}: {self.rule.value}{via}"


class AddressMapper:
    """The RFC 2156 mapping tables and the gateway's fallbacks, both directions.

    RFC 2156 keeps one table per direction (Appendix F: "table 1" maps RFC 822 domains to
    O/R prefixes, "table 2" O/R prefixes to domains), so an asymmetric mapping can be
    configured; `symmetric` puts each entry in both. A mapping is reversible when the
    entries it used are in both tables and no longer entry of the other table catches it.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        domain_to_oraddress: Iterable[MappingEntry] = (),
        oraddress_to_domain: Iterable[MappingEntry] = (),
    ) -> None:
        self.gateway = gateway
        domain_to_oraddress = list(domain_to_oraddress)
        oraddress_to_domain = list(oraddress_to_domain)
        # One domain cannot map to two O/R prefixes, nor one prefix to two domains: the
        # second line would never be used, or worse, be taken for the first.
        _refuse_repeats("domain", [entry.domain for entry in domain_to_oraddress])
        _refuse_repeats(
            "O/R prefix", [_comparison_form(entry.prefix) for entry in oraddress_to_domain]
        )
        # Longest match first: the most labels, the most O/R attributes; between equals the
        # order given wins (sorted() is stable), so a configuration reads top to bottom.
        self.domain_table = sorted(domain_to_oraddress, key=lambda e: -e.domain.count("."))
        self.oraddress_table = sorted(oraddress_to_domain, key=lambda e: -_size(e.prefix))
        # The texts of addresses mapped so far, for the conversions to remember: the tables
        # never change once made (DNS entries make a new mapper, `with_entries`), so an
        # answer holds as long as the mapper does.
        self.mapped_to_x400: dict[str, str] = {}
        self.mapped_to_rfc822: dict[str, str] = {}

    @classmethod
    def symmetric(cls, gateway: Gateway, entries: Iterable[MappingEntry]) -> AddressMapper:
        both = list(entries)
        return cls(gateway, domain_to_oraddress=both, oraddress_to_domain=both)

    def with_entries(
        self,
        *,
        domain_to_oraddress: Iterable[MappingEntry] = (),
        oraddress_to_domain: Iterable[MappingEntry] = (),
    ) -> AddressMapper:
        """This mapper with more entries (found in DNS, RFC 2163) in its tables. The tables'
        own entries come first: an added entry for a domain or O/R prefix a table already
        maps is left out, and so is a repeat among the added."""
        domains = {entry.domain: entry for entry in self.domain_table}
        for entry in domain_to_oraddress:
            domains.setdefault(entry.domain, entry)
        prefixes = {_comparison_form(entry.prefix): entry for entry in self.oraddress_table}
        for entry in oraddress_to_domain:
            prefixes.setdefault(_comparison_form(entry.prefix), entry)
        return AddressMapper(
            self.gateway,
            domain_to_oraddress=domains.values(),
            oraddress_to_domain=prefixes.values(),
        )

    # --- X.400 → RFC 822 ---------------------------------------------------------------

    def to_rfc822(self, address: ORAddress) -> ToRfc822:
        """Map an O/R address to a mailbox (RFC 2156 §4.3.4); raises MappingError."""
        carried = _rfc822_dda(address, self.gateway.oraddress)
        if carried is not None:
            # The reverse of the RFC 822 → X.400 fallback (RFC 2156 §4.3.5).
            return ToRfc822(_carried_mailbox(carried), MappingRule.GATEWAY_RFC822_DDA)
        for entry in self.oraddress_table:
            if has_prefix(address, entry.prefix):
                mapped = self._by_entry(address, entry)
                if mapped is not None:
                    return mapped
        # RFC 2156 §4.3.4: no mapping applies, so the whole O/R address, in the std-or
        # form, becomes the local part at the gateway's own domain.
        mailbox = _mailbox(_local_slash(address, _keys(address)), self.gateway.domain)
        return ToRfc822(mailbox, MappingRule.GATEWAY_LOCAL_PART)

    def _by_entry(self, address: ORAddress, entry: MappingEntry) -> ToRfc822 | None:
        below = [key for key in _keys(address) if key not in _keys(entry.prefix)]
        labels = _domain_labels(address, entry.prefix, below)
        domain = ".".join([label for _, label in reversed(labels)] + [entry.domain])
        owner = self._domain_entry(domain)
        if labels and owner is not None and owner.domain != entry.domain:
            # The subdomain made of O/OU belongs to another entry (sales.acme.example ⇄
            # /O=Marketing/): mail to it would reach someone else, so they stay attributes.
            labels, domain = [], entry.domain
        rest = [key for key in below if key not in {key for key, _ in labels}]
        if not rest:
            return None  # nothing left for a local part: the gateway form keeps it whole
        if len(rest) == 1 and _is_rfc822_dda(rest[0]):
            carried = address.ddas[0][1]
            return ToRfc822(_carried_mailbox(carried), MappingRule.TABLE_RFC822_DDA, entry)
        try:
            name = _personal_name_local(address, rest)
            if name is not None:
                return ToRfc822(_mailbox(name, domain), MappingRule.TABLE_PERSONAL_NAME, entry)
            local = _local_slash(address, rest)
            return ToRfc822(_mailbox(local, domain), MappingRule.TABLE_ATTRIBUTES, entry)
        except MappingError:
            return None  # too long for RFC 5321: the gateway form may still carry it

    # --- RFC 822 → X.400 ---------------------------------------------------------------

    def to_x400(self, mailbox: Mailbox) -> ToX400:
        """Map a mailbox to an O/R address (RFC 2156 §4.3.5); raises MappingError."""
        if mailbox.domain == self.gateway.domain and mailbox.local.startswith("/"):
            # The reverse of the X.400 → RFC 822 fallback (RFC 2156 §4.3.4).
            try:
                address = parse_oraddress(mailbox.local)
            except AddressError as exc:
                raise MappingError(
                    f"{mailbox}: the local part is not an O/R address: {exc}"
                ) from None
            return ToX400(address, MappingRule.LOCAL_PART_ORADDRESS)
        entry = self._domain_entry(mailbox.domain)
        if entry is not None:
            return self._by_domain(mailbox, entry)
        return ToX400(_with_rfc822_dda(self.gateway.oraddress, mailbox), MappingRule.GATEWAY_DDA)

    def _domain_entry(self, domain: str) -> MappingEntry | None:
        """The domain table's longest match: the entry's domain or a domain below it."""
        for entry in self.domain_table:
            if domain == entry.domain or domain.endswith("." + entry.domain):
                return entry
        return None

    def _by_domain(self, mailbox: Mailbox, entry: MappingEntry) -> ToX400:
        below = mailbox.domain[: -len(entry.domain)].rstrip(".")
        items = _label_items(entry.prefix, below.split(".")[::-1] if below else [])
        base_text = format_slash(entry.prefix) + "".join(items or ())
        try:
            base = parse_oraddress(base_text) if items is not None else None
        except AddressError:
            base = None  # a subdomain longer than an O or OU may be
        if base is None:
            return ToX400(
                _with_rfc822_dda(self.gateway.oraddress, mailbox), MappingRule.GATEWAY_DDA
            )
        local = mailbox.local
        if local.startswith("/"):
            # RFC 2156 §4.3.5: a local part in the std-or form holds the O/R attributes
            # below the table's prefix.
            try:
                address = parse_oraddress(base_text + local[1:])
            except AddressError as exc:
                raise MappingError(
                    f"{mailbox}: the local part's O/R attributes do not fit under "
                    f"{format_slash(entry.prefix)}: {exc}"
                ) from None
            return ToX400(address, MappingRule.DOMAIN_ATTRIBUTES, entry)
        name = _parse_personal_name(local)
        if name is not None:
            try:
                address = parse_oraddress(base_text + name)
            except AddressError:
                pass  # a name longer than X.402 allows travels whole in the DDA below
            else:
                return ToX400(address, MappingRule.DOMAIN_PERSONAL_NAME, entry)
        try:
            address = _with_rfc822_dda(base, mailbox)
        except MappingError:
            return ToX400(
                _with_rfc822_dda(self.gateway.oraddress, mailbox), MappingRule.GATEWAY_DDA
            )
        return ToX400(address, MappingRule.DOMAIN_RFC822_DDA, entry)


# --- helpers --------------------------------------------------------------------------------


def _refuse_repeats(what: str, keys: list[str]) -> None:
    seen: set[str] = set()
    repeated: set[str] = set()
    for key in keys:
        (repeated if key in seen else seen).add(key)
    if repeated:
        raise MappingError(f"{what} mapped twice in one table: {', '.join(sorted(repeated))}")


def _comparison_form(prefix: ORAddress) -> str:
    """The prefix as X.411 compares it, so `/O=Sales/` and `/O=SALES/` count as one."""
    return "/".join(f"{key}={fold_value(value)}" for key, value in prefix.attributes())


def _keys(address: ORAddress) -> list[str]:
    return [key for key, _ in address.attributes()]


def _size(prefix: ORAddress) -> int:
    return len(prefix.attributes())


def has_prefix(address: ORAddress, prefix: ORAddress) -> bool:
    """Every attribute of the prefix is in the address with an equal value (X.411 comparison).

    Unlike routing, a blank ADMD here is a value like any other: a mapping that let it
    stand for every ADMD would lose the ADMD and could not be reversed.
    """
    mine = {key: fold_value(value) for key, value in address.attributes()}
    return all(mine.get(key) == fold_value(value) for key, value in prefix.attributes())


def _domain_labels(address: ORAddress, prefix: ORAddress, rest: list[str]) -> list[tuple[str, str]]:
    """The O and OU attributes just below the prefix that become subdomains (RFC 2156
    §4.3.4), deepest last; they stop at the first that is not a DNS label."""
    values = dict(address.attributes())
    taken = set(_keys(prefix))
    start = next((i for i, key in enumerate(_LABEL_KEYS) if key not in taken), len(_LABEL_KEYS))
    labels: list[tuple[str, str]] = []
    for key in _LABEL_KEYS[start:]:
        value = values.get(key)
        if value is None or key not in rest or not _is_label(value):
            break
        labels.append((key, value.lower()))
    return labels


def _label_items(prefix: ORAddress, labels: list[str]) -> list[str] | None:
    """The slash items for the subdomains below a matched domain, highest first; None when
    there are more than O and four OUs can hold."""
    taken = set(_keys(prefix))
    start = next((i for i, key in enumerate(_LABEL_KEYS) if key not in taken), len(_LABEL_KEYS))
    if len(labels) > len(_LABEL_KEYS) - start:
        return None
    return [f"{key}={label}/" for key, label in zip(_LABEL_KEYS[start:], labels, strict=False)]


def _is_label(value: str) -> bool:
    return (
        0 < len(value) <= 63
        and all(ch in _LDH for ch in value)
        and value[0] != "-"
        and value[-1] != "-"
    )


def _local_slash(address: ORAddress, keys: list[str]) -> str:
    """The std-or local part: the chosen attributes, least significant first as in RFC 2156's
    examples (`/G=Jo/S=Smith/O=Sales/PRMD=Acme/ADMD= /C=GB/`)."""
    wanted = set(keys)
    items = [item for key, item in slash_items(address) if key in wanted]
    return "/" + "".join(reversed(items))


def _personal_name_local(address: ORAddress, rest: list[str]) -> str | None:
    """`Given.I.Surname` (RFC 2156 §4.3.4, EBNF.pn) when only a personal name remains and
    it reads back as the same name."""
    if not set(rest) <= {"S", "G", "I"} or address.surname is None:
        return None
    parts = [address.given_name] if address.given_name else []
    parts += list(address.initials or "")
    if not parts:
        return None  # a lone surname would read back as an RFC 822 user name
    local = ".".join([*parts, address.surname])
    wanted = _name_items(address.surname, address.given_name, address.initials)
    return local if _parse_personal_name(local) == wanted else None


def _parse_personal_name(local: str) -> str | None:
    """The slash items of a personal-name local part (`Jo.K.Smith` → S, G, I), or None.

    RFC 2156 §4.3.4 (EBNF.pn): a first component longer than one character is the given
    name, the one-letter components are initials, the last is the surname.
    """
    parts = local.split(".")
    if len(parts) < 2 or not all(part and set(part) <= _NAME_CHARS for part in parts):
        return None
    first, middle, surname = parts[0], parts[1:-1], parts[-1]
    given = first if len(first) > 1 else None
    initials = ([] if given else [first]) + middle
    if any(len(i) != 1 or not i.isalpha() for i in initials):
        return None
    return _name_items(surname, given, "".join(initials) or None)


def _name_items(surname: str, given: str | None, initials: str | None) -> str:
    items = f"S={surname}/"
    if given:
        items += f"G={given}/"
    if initials:
        items += f"I={initials}/"
    return items


def _is_rfc822_dda(key: str) -> bool:
    return key.upper() == f"DDA:{RFC822_DDA}"


def _rfc822_dda(address: ORAddress, base: ORAddress) -> str | None:
    """The mail address an RFC-822 DDA carries when it is all that address adds to base."""
    if len(address.ddas) != 1 or not _is_rfc822_dda(f"DDA:{address.ddas[0][0]}"):
        return None
    without = [(k, fold_value(v)) for k, v in address.attributes() if not k.startswith("DDA:")]
    if without != [(k, fold_value(v)) for k, v in base.attributes()]:
        return None
    return address.ddas[0][1]


def _carried_mailbox(text: str) -> Mailbox:
    try:
        return parse_mailbox(text)
    except AddressError as exc:
        raise MappingError(f"the RFC-822 DDA {text!r} is not a mail address: {exc}") from None


def _with_rfc822_dda(base: ORAddress, mailbox: Mailbox) -> ORAddress:
    """base with the mailbox in an RFC-822 DDA (RFC 2156 §4.3.5; the text form escapes it,
    `jo(a)example.org`)."""
    try:
        return replace(base, ddas=(*base.ddas, (RFC822_DDA, str(mailbox))))
    except AddressError as exc:
        raise MappingError(f"{mailbox} cannot be carried in an RFC-822 DDA: {exc}") from None


def _mailbox(local: str, domain: str) -> Mailbox:
    try:
        return Mailbox(local, domain)
    except AddressError as exc:
        raise MappingError(f"{local!r}@{domain} is not a mail address: {exc}") from None
