"""AFTN addresses and their AMHS O/R addresses (ICAO Doc 9880 Part II §3.1.2.2.2, the AMHS
addressing schemes). An AFTN address is eight letters: a location indicator (four, ICAO Doc
7910), the designator of an organisation (three, Doc 8585) and a letter for its department
(Annex 10 Volume II §4.4.3.1.2). Each AMHS management domain addresses its users in one of
two schemes, as the ICAO register of AMHS management domains records:

* XF, translated: /C=XX/ADMD=ICAO/PRMD=<domain>/O=AFTN/OU1=<AFTN address>/
* CAAS, common AMHS addressing: /C=XX/ADMD=ICAO/PRMD=<domain>/O=<organisation of the
  location>/OU1=<location indicator>/CN=<AFTN address>/

The register (`Register`) maps location indicator prefixes to their domain and scheme, both
ways: an AFTN address to its O/R address, and an O/R address back to its AFTN address."""

from __future__ import annotations

import csv
import enum
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from waypost.address.oraddress import ORAddress, parse_oraddress

_AFTN_ADDRESS = re.compile(r"[A-Z]{8}")
_PREFIX = re.compile(r"[A-Z]{1,4}")
# The O of an XF address (Doc 9880 Part II §3.1.2.2.2.1).
XF_ORGANIZATION = "AFTN"


class Scheme(enum.StrEnum):
    """The addressing scheme of an AMHS management domain."""

    XF = "XF"
    CAAS = "CAAS"


class AddressingError(ValueError):
    """An AFTN address that is not one, or one (or an O/R address) the register cannot map."""


def is_aftn_address(text: str) -> bool:
    """Whether `text` is an AFTN address: eight letters A to Z."""
    return _AFTN_ADDRESS.fullmatch(text) is not None


def check_aftn_address(text: str) -> str:
    """`text` as an AFTN address (upper case); AddressingError if it is not eight letters."""
    address = text.strip().upper()
    if not is_aftn_address(address):
        raise AddressingError(f"{text!r} is not an AFTN address (eight letters A to Z)")
    return address


@dataclass(frozen=True, slots=True)
class Domain:
    """One row of the register: the AFTN addresses whose location indicator starts with
    `prefix` belong to this AMHS management domain, addressed in `scheme`; `organization`
    is the O of its CAAS addresses (XF addresses have O=AFTN)."""

    prefix: str
    scheme: Scheme
    country: str
    admd: str
    prmd: str
    organization: str = XF_ORGANIZATION

    def oraddress(self, aftn: str) -> ORAddress:
        """The O/R address of the AFTN address `aftn` in this domain."""
        if self.scheme is Scheme.XF:
            return ORAddress(
                country=self.country,
                admd=self.admd,
                prmd=self.prmd,
                organization=XF_ORGANIZATION,
                org_units=(aftn,),
            )
        return ORAddress(
            country=self.country,
            admd=self.admd,
            prmd=self.prmd,
            organization=self.organization,
            org_units=(aftn[:4],),
            common_name=aftn,
        )


class Register:
    """The register of AMHS management domains, looked up by the longest prefix of a
    location indicator that has a row."""

    def __init__(self, domains: Iterable[Domain] = ()) -> None:
        self._by_prefix: dict[str, Domain] = {}
        for domain in domains:
            if domain.prefix in self._by_prefix:
                raise AddressingError(f"location indicator prefix {domain.prefix} appears twice")
            self._by_prefix[domain.prefix] = domain

    def __len__(self) -> int:
        return len(self._by_prefix)

    def __iter__(self) -> Iterator[Domain]:
        return iter(self._by_prefix.values())

    def domain_of(self, aftn: str) -> Domain | None:
        """The domain an AFTN address belongs to: the row of the longest prefix of its
        location indicator."""
        for length in (4, 3, 2, 1):
            domain = self._by_prefix.get(aftn[:length])
            if domain is not None:
                return domain
        return None

    def to_oraddress(self, aftn: str) -> ORAddress:
        """The AMHS O/R address of an AFTN address; AddressingError when it is not an AFTN
        address or no domain of the register holds its location indicator."""
        address = check_aftn_address(aftn)
        domain = self.domain_of(address)
        if domain is None:
            raise AddressingError(
                f"no AMHS management domain in the register holds location indicator "
                f"{address[:4]} (of {address})"
            )
        return domain.oraddress(address)

    def to_aftn(self, oraddress: ORAddress) -> str:
        """The AFTN address an AMHS O/R address stands for: OU1 of an XF address, CN of a
        CAAS address — when the register's domain for it is the one the O/R address names,
        in the scheme it names, and the O/R address has nothing else. AddressingError if
        it is not such an address."""
        aftn = _aftn_part(oraddress)
        if aftn is None:
            raise AddressingError(
                f"{oraddress} is neither an XF nor a CAAS address (no AFTN address in it)"
            )
        registered = self.to_oraddress(aftn)
        # X.411 comparison (case and spaces aside), every attribute both ways.
        if not (oraddress.matches_prefix(registered) and registered.matches_prefix(oraddress)):
            domain = self.domain_of(aftn)
            assert domain is not None  # to_oraddress found it
            expected = domain.oraddress(aftn)
            raise AddressingError(
                f"{oraddress} names {aftn}, whose AMHS address in the register is {expected}"
            )
        return aftn


def _aftn_part(oraddress: ORAddress) -> str | None:
    """The eight letters an XF or CAAS address carries (OU1, or CN), if any."""
    if oraddress.common_name is not None:
        candidate = oraddress.common_name.upper()
    elif oraddress.organization is not None and oraddress.organization.upper() == "AFTN":
        candidate = oraddress.org_units[0].upper() if len(oraddress.org_units) == 1 else ""
    else:
        return None
    return candidate if is_aftn_address(candidate) else None


# -- loading the register ---------------------------------------------------------------

# The columns of a register file, CSV or LDIF: the prefix of the location indicators, the
# scheme, C, ADMD, PRMD and, for CAAS, O.
COLUMNS = ("prefix", "scheme", "country", "admd", "prmd", "organization")


def load_register(text: str, *, name: str = "register") -> Register:
    """A register from the text of a file: LDIF when it has `dn:` lines, else CSV with a
    header row naming COLUMNS. AddressingError names the row and what is wrong."""
    is_ldif = re.search(r"(?mi)^dn:", text) is not None
    rows = list(_ldif_rows(text) if is_ldif else _csv_rows(text))
    domains = [_domain(where, row, name) for where, row in rows]
    return Register(domains)


def _csv_rows(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or ()]
    missing = [c for c in COLUMNS[:5] if c not in fields]
    if missing:
        raise AddressingError(f"the header row lacks column {', '.join(missing)}")
    for row in reader:
        values = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if any(values.values()):
            yield f"line {reader.line_num}", values


def _ldif_rows(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """LDIF entries (RFC 2849), each a row: attributes named as COLUMNS (in any case), or
    with an `amhs` prefix (amhsPrefix, amhsScheme, …); other attributes are ignored."""
    # Continuation lines (a leading space) join the line before (RFC 2849 §2).
    unfolded = re.sub(r"\r?\n ", "", text)
    for number, block in enumerate(re.split(r"\r?\n\s*\r?\n", unfolded), 1):
        values: dict[str, str] = {}
        dn = ""
        for line in block.splitlines():
            if not line or line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if value.startswith(":"):
                raise AddressingError(f"entry {number}: base64 values are not supported ({key})")
            if key == "dn":
                dn = value.strip()
                continue
            key = key.removeprefix("amhs")
            if key in COLUMNS:
                values[key] = value.strip()
        if dn or values:
            yield f"entry {dn or number}", values


def _domain(where: str, row: dict[str, str], name: str) -> Domain:
    def problem(text: str) -> AddressingError:
        return AddressingError(f"{name}: {where}: {text}")

    prefix = row.get("prefix", "").upper()
    if not _PREFIX.fullmatch(prefix):
        raise problem(f"prefix {prefix!r} is not 1 to 4 letters of a location indicator")
    try:
        scheme = Scheme(row.get("scheme", "").upper())
    except ValueError:
        raise problem(f"scheme {row.get('scheme')!r} is not XF or CAAS") from None
    organization = row.get("organization", "")
    if scheme is Scheme.CAAS and not organization:
        raise problem("a CAAS domain needs its organization (the O of its addresses)")
    domain = Domain(
        prefix=prefix,
        scheme=scheme,
        country=row.get("country", ""),
        admd=row.get("admd", ""),
        prmd=row.get("prmd", ""),
        organization=organization if scheme is Scheme.CAAS else XF_ORGANIZATION,
    )
    try:
        sample = domain.oraddress(prefix.ljust(8, "A"))
        parse_oraddress(str(sample))
    except ValueError as exc:
        raise problem(f"its O/R addresses would be invalid: {exc}") from None
    if not domain.prmd:
        raise problem("prmd is empty: an AMHS management domain is a PRMD")
    return domain
