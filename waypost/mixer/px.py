"""RFC 2163 PX records, sans-I/O: an O/R prefix written as a domain (MAPX400), the names a
gateway looks up in the two DNS trees, and which record of an answer makes a mapping entry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from waypost.address.mailbox import AddressError, parse_domain
from waypost.address.oraddress import ORAddress, fold_value, parse_oraddress, ps_encode
from waypost.mixer.address_map import MappingEntry, MappingError

# RFC 2156 Appendix F: a mapping names the hierarchical attributes only, most significant
# first, none skipped (an omitted one is written without a value). In DNS syntax every
# OU is keyed "OU"; the first is OU1, nearest the O.
HIERARCHY = ("C", "ADMD", "PRMD", "O", "OU1", "OU2", "OU3", "OU4")
# RFC 2163 §4.2 (the X.400 mail domain in DNS syntax): a country's X.400 tree hangs below
# "X42D.<country>", so that it is delegated like any other subtree of the country's domain.
X400_TREE = "X42D"
MAX_LABEL = 63  # RFC 1035 §2.3.4
MAX_NAME = 255  # octets of a whole name in the wire form, the root's length octet included


class PxError(MappingError):
    """A PX record that holds no usable mapping entry; the message says why."""


@dataclass(frozen=True, slots=True)
class PxRecord:
    """One PX record's RDATA (RFC 2163 §4), its two names as labels without the root."""

    preference: int
    map822: tuple[str, ...]
    mapx400: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.preference} {_text(self.map822)} {_text(self.mapx400)}"


def mapx400_labels(prefix: ORAddress) -> tuple[str, ...]:
    """The MAPX400 form of an O/R prefix, most specific label first: `/C=IT/ADMD=garr/
    PRMD=infn/O=cnr/` → `O-cnr.PRMD-infn.ADMD-garr.C-it` (RFC 2163 §4's examples).

    Each attribute is `KEY-value`, the value in its RFC 2156 printable-string form
    (`@` → `(a)`); the blank ADMD is `ADMD- ` (a space: `ADMD-\\032` in a zone file); an
    attribute the hierarchy skips is its key alone (RFC 2156 Appendix F's `@`).
    """
    values = dict(prefix.attributes())
    extra = [key for key in values if key not in HIERARCHY]
    if extra:
        raise PxError(f"an O/R prefix in DNS holds C, ADMD, PRMD, O and OU only, not {extra}")
    deepest = max(HIERARCHY.index(key) for key in values)
    # The country code in lower case, as the RFC writes it and as domains are written.
    values["C"] = values["C"].lower()
    labels = [_label(key, values.get(key)) for key in HIERARCHY[: deepest + 1]]
    return tuple(reversed(labels))


def parse_mapx400(labels: Iterable[str]) -> ORAddress:
    """The O/R prefix a MAPX400 names; raises PxError with the reason.

    Values come back in whatever case the server keeps (many lower-case the names inside
    RDATA), which X.411 comparison ignores; the country code is upper-cased.
    """
    items = list(labels)
    if not items:
        raise PxError("MAPX400 is empty")
    text = "/"
    for depth, label in enumerate(reversed(items)):
        key, sep, value = label.partition("-")
        key = key.upper()
        want = HIERARCHY[depth] if depth < len(HIERARCHY) else None
        if want is None or key != want.rstrip("1234"):
            expected = f"{want.rstrip('1234')}" if want else "nothing"
            raise PxError(
                f"MAPX400 {_text(items)}: label {label!r} where {expected} belongs "
                "(RFC 2156 Appendix F: C, ADMD, PRMD, O, OU, in that order, none skipped)"
            )
        if not sep:
            if depth == len(items) - 1 or key in {"C", "ADMD"}:
                # A trailing omitted attribute says the labels below a domain stand for
                # the attribute after it, which a mapping entry cannot express; X.400 has
                # no O/R address without C and ADMD.
                raise PxError(f"MAPX400 {_text(items)}: omitted {key} is not supported")
            continue
        if not value:
            raise PxError(f"MAPX400 {_text(items)}: {key} has an empty value")
        text += f"{key}={value.replace('/', '//')}/"
    if len(items) < 2:
        raise PxError(f"MAPX400 {_text(items)}: an O/R prefix needs at least C and ADMD")
    try:
        return parse_oraddress(text)
    except AddressError as exc:
        raise PxError(f"MAPX400 {_text(items)} is not an O/R prefix: {exc}") from None


def x400_tree_name(prefix: ORAddress, root: Iterable[str] = ()) -> tuple[str, ...] | None:
    """The owner name of a prefix's PX record in the X.400 tree: its MAPX400 with the
    country label `C-it` turned into `X42D.it`, below root (none: the Internet's root).
    None when the name exceeds what the DNS can hold (RFC 1035 §2.3.4)."""
    labels = (*mapx400_labels(prefix)[:-1], X400_TREE, prefix.country.lower(), *root)
    return labels if _fits(labels) else None


def x400_tree_names(address: ORAddress, root: Iterable[str] = ()) -> list[tuple[str, ...]]:
    """The X.400 tree names to try for an O/R address, longest match first: its C, ADMD,
    PRMD, O and OUs, then one attribute less at a time down to its C and ADMD."""
    root = tuple(root)
    present = dict(address.attributes())
    depth = max(i for i, key in enumerate(HIERARCHY) if key in present)
    names = []
    # Down to C and ADMD: an O/R prefix without an ADMD is no O/R address (X.402).
    for end in range(depth, 0, -1):
        kept = HIERARCHY[: end + 1]
        if kept[-1] not in present:
            continue  # an entry cannot end on an omitted attribute (see parse_mapx400)
        prefix = _prefix_of(address, kept)
        name = x400_tree_name(prefix, root)
        if name is not None:
            names.append(name)
    return names


def domain_tree_names(domain: str) -> list[str]:
    """The RFC 822 tree names to try for a domain, longest match first: the domain, then one
    label less at a time (a.b.example, b.example, example)."""
    domain = parse_domain(domain)
    if domain.startswith("["):
        return []  # an address literal is no name in DNS
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def entry_for_domain(domain: str, records: Iterable[PxRecord]) -> MappingEntry:
    """The mapping entry (domain → O/R prefix) that the records found for domain, or for a
    domain above it, make: the most preferred usable one (RFC 2163 §4: lower PREFERENCE
    first). Its MAP822 must be the domain or a domain above it, else a wildcard would hand
    the domain someone else's mapping. Raises PxError when no record is usable."""
    domain = parse_domain(domain)
    problems = []
    for record in _by_preference(records):
        try:
            entry = _entry(record)
            if domain != entry.domain and not domain.endswith("." + entry.domain):
                raise PxError(f"PX {record}: MAP822 {entry.domain} is not {domain} or above it")
            return entry
        except MappingError as exc:
            problems.append(str(exc))
    raise PxError("; ".join(problems) or f"no PX record for {domain}")


def entry_for_oraddress(address: ORAddress, records: Iterable[PxRecord]) -> MappingEntry:
    """The mapping entry (O/R prefix → domain) that the records found in the X.400 tree for
    the address make: the most preferred usable one. Its MAPX400 must be a prefix of the
    address, an omitted attribute absent from it. Raises PxError when none is usable."""
    problems = []
    for record in _by_preference(records):
        try:
            entry = _entry(record)
            _check_prefix(address, record, entry.prefix)
            return entry
        except MappingError as exc:
            problems.append(str(exc))
    raise PxError("; ".join(problems) or f"no PX record for {address}")


# --- helpers --------------------------------------------------------------------------------


def _label(key: str, value: str | None) -> str:
    name = key.rstrip("1234")
    return name if value is None else f"{name}-{ps_encode(value)}"


def _prefix_of(address: ORAddress, keys: tuple[str, ...]) -> ORAddress:
    present = dict(address.attributes())
    text = "".join(
        f"{key}={ps_encode(present[key]).replace('/', '//')}/" for key in keys if key in present
    )
    return parse_oraddress("/" + text)


def _fits(labels: tuple[str, ...]) -> bool:
    sizes = [len(label.encode("ascii")) for label in labels]
    return all(0 < size <= MAX_LABEL for size in sizes) and sum(sizes) + len(sizes) + 1 <= MAX_NAME


def _by_preference(records: Iterable[PxRecord]) -> list[PxRecord]:
    # Equal preferences: the same order on every lookup, whatever order the server used.
    return sorted(records, key=lambda r: (r.preference, r.map822, r.mapx400))


def _entry(record: PxRecord) -> MappingEntry:
    try:
        domain = parse_domain(".".join(record.map822))
    except AddressError as exc:
        raise PxError(f"PX {record}: MAP822 is not a mail domain: {exc}") from None
    return MappingEntry(parse_mapx400(record.mapx400), domain)


def _check_prefix(address: ORAddress, record: PxRecord, prefix: ORAddress) -> None:
    mine = {key: fold_value(value) for key, value in address.attributes()}
    theirs = {key: fold_value(value) for key, value in prefix.attributes()}
    deepest = max(HIERARCHY.index(key) for key in theirs)
    for key in HIERARCHY[: deepest + 1]:
        if mine.get(key) != theirs.get(key):
            raise PxError(f"PX {record}: MAPX400 is not a prefix of {address}")


def _text(labels: Iterable[str]) -> str:
    return ".".join(label.replace(".", "\\.") for label in labels) + "."
