"""X.400 O/R addresses (X.402 mnemonic form) and their RFC 1685 / RFC 2156 text forms.

An `ORAddress` holds each value as meant (`jo@example.com`); the text forms apply
the RFC 2156 printable-string escapes (`jo(a)example.com`) and, for a delimiter
inside a value, the F.401 Annex F (RFC 1685) doubling (`//`, `;;`).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import lru_cache

from waypost.address.mailbox import AddressError, parse_mailbox

# X.411 upper bounds, counted on the PrintableString that travels in P1, i.e. after the
# RFC 2156 escapes: an "@" costs three characters there.
UB_DOMAIN_NAME = 16
UB_ORGANIZATION_NAME = 64
UB_ORGANIZATIONAL_UNIT_NAME = 32
UB_ORGANIZATIONAL_UNITS = 4
UB_SURNAME = 40
UB_GIVEN_NAME = 16
UB_INITIALS = 5
UB_GENERATION_QUALIFIER = 3
UB_COMMON_NAME = 64
UB_X121_ADDRESS = 16
UB_NUMERIC_USER_ID = 32
UB_TERMINAL_ID = 24
UB_DDA_TYPE = 8
UB_DDA_VALUE = 128
UB_DDAS = 4

# F.401 Annex F.3.2.2 abbreviations of the X.411 TerminalType values.
TERMINAL_TYPES = ("tlx", "ttx", "g3fax", "g4fax", "ia5", "vtx")

BLANK_ADMD = " "  # X.400's single space: "any ADMD of the country"

# The canonical order of the attributes: attributes(), the text forms and routing use it.
ATTRIBUTE_ORDER = (
    "C", "ADMD", "PRMD", "O", "OU1", "OU2", "OU3", "OU4",
    "S", "G", "I", "Q", "CN", "X121", "N-ID", "T-ID", "T-TY",
)  # fmt: skip

_PRINTABLE = frozenset(string.ascii_letters + string.digits + " '()+,-./:=?")
_NAMED_ESCAPES = {"a": "@", "p": "%", "b": "!", "q": '"', "u": "_", "l": "(", "r": ")"}
_ESCAPE_OF = {char: f"({name})" for name, char in _NAMED_ESCAPES.items()}


@dataclass(frozen=True, slots=True)
class _Text:
    """A single-valued PrintableString attribute: its labels, field and X.402 bound."""

    key: str
    short: str
    field: str
    bound: int


_TEXTS = (
    _Text("ADMD", "a", "admd", UB_DOMAIN_NAME),
    _Text("PRMD", "p", "prmd", UB_DOMAIN_NAME),
    _Text("O", "o", "organization", UB_ORGANIZATION_NAME),
    _Text("S", "s", "surname", UB_SURNAME),
    _Text("G", "g", "given_name", UB_GIVEN_NAME),
    _Text("I", "i", "initials", UB_INITIALS),
    _Text("Q", "q", "generation", UB_GENERATION_QUALIFIER),
    _Text("CN", "cn", "common_name", UB_COMMON_NAME),
    _Text("T-ID", "t-id", "terminal_id", UB_TERMINAL_ID),
)

# Labels as typed (lower case) → canonical key. "OU" takes the next free OU1…OU4.
_ALIASES = {
    "c": "C", "country": "C",
    "a": "ADMD", "admd": "ADMD",
    "p": "PRMD", "prmd": "PRMD",
    "o": "O", "org": "O",
    "ou": "OU", "ou1": "OU1", "ou2": "OU2", "ou3": "OU3", "ou4": "OU4",
    "s": "S", "surname": "S",
    "g": "G", "given": "G",
    "i": "I", "initials": "I",
    "q": "Q", "gq": "Q", "generation": "Q",
    "cn": "CN",
    "x121": "X121", "x.121": "X121",
    "n-id": "N-ID", "ua-id": "N-ID",
    "t-id": "T-ID",
    "t-ty": "T-TY",
}  # fmt: skip
_SHORT = {spec.key: spec.short for spec in _TEXTS} | {
    "C": "c", "X121": "x121", "N-ID": "n-id", "T-TY": "t-ty",
    "OU1": "ou1", "OU2": "ou2", "OU3": "ou3", "OU4": "ou4",
}  # fmt: skip
_DDA_PREFIXES = ("dda:", "dd.")  # RFC 1685 and RFC 2156 spellings
_DDA_SHORTHANDS = {"rfc-822": "RFC-822"}  # RFC 2156 §4.2.1


@dataclass(frozen=True, slots=True, kw_only=True)
class ORAddress:
    """An X.400 mnemonic O/R address: the X.402 standard attributes and up to four DDAs.

    Values are plain text (printable ASCII), unescaped. Construction validates the
    X.402 bounds; it upper-cases the country and turns an empty ADMD into the
    blank ADMD " ". `str()` is the canonical RFC 1685 slash form.
    """

    country: str
    admd: str = BLANK_ADMD
    prmd: str | None = None
    organization: str | None = None
    org_units: tuple[str, ...] = ()
    surname: str | None = None
    given_name: str | None = None
    initials: str | None = None
    generation: str | None = None
    common_name: str | None = None
    x121: str | None = None
    numeric_user_id: str | None = None
    terminal_id: str | None = None
    terminal_type: str | None = None
    ddas: tuple[tuple[str, str], ...] = ()
    # X.411 comparison forms, for prefix matching without re-folding on every route().
    _folded: dict[str, str] = field(init=False, repr=False, compare=False)
    _folded_ddas: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)
    # The canonical slash text, made on first use (`format_slash`).
    _slash: str | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        country = self.country.strip().upper()
        if not (
            (len(country) == 2 and country.isascii() and country.isalpha())
            or (len(country) == 3 and country.isascii() and country.isdigit())
        ):
            raise AddressError(
                f"C must be 2 letters (ISO 3166) or 3 digits (X.121 DCC), not {self.country!r}"
            )
        object.__setattr__(self, "country", country)
        if not self.admd.strip():
            object.__setattr__(self, "admd", BLANK_ADMD)
        for spec in _TEXTS:
            value = getattr(self, spec.field)
            if value is not None:
                _check_text(spec.key, value, spec.bound)
        org_units = tuple(self.org_units)
        if len(org_units) > UB_ORGANIZATIONAL_UNITS:
            raise AddressError(
                f"{len(org_units)} organizational units; X.402 allows at most "
                f"{UB_ORGANIZATIONAL_UNITS}"
            )
        for n, unit in enumerate(org_units, 1):
            _check_text(f"OU{n}", unit, UB_ORGANIZATIONAL_UNIT_NAME)
        object.__setattr__(self, "org_units", org_units)
        if self.surname is None:
            personal = (("G", self.given_name), ("I", self.initials), ("Q", self.generation))
            for key, value in personal:
                if value is not None:
                    raise AddressError(f"{key} needs S: a personal name must have a surname")
        _check_numeric("X121", self.x121, UB_X121_ADDRESS)
        _check_numeric("N-ID", self.numeric_user_id, UB_NUMERIC_USER_ID)
        if self.terminal_type is not None:
            terminal_type = self.terminal_type.strip().lower()
            if terminal_type not in TERMINAL_TYPES:
                raise AddressError(
                    f"T-TY must be one of {', '.join(TERMINAL_TYPES)}, not {self.terminal_type!r}"
                )
            object.__setattr__(self, "terminal_type", terminal_type)
        ddas = tuple((dda_type, value) for dda_type, value in self.ddas)
        if len(ddas) > UB_DDAS:
            raise AddressError(f"{len(ddas)} DDAs; X.402 allows at most {UB_DDAS}")
        for dda_type, value in ddas:
            _check_dda_type(dda_type)
            _check_text(f"DDA:{dda_type}", value, UB_DDA_VALUE)
        object.__setattr__(self, "ddas", ddas)
        object.__setattr__(
            self, "_folded", {key: fold_value(value) for key, value in self._standard()}
        )
        object.__setattr__(
            self, "_folded_ddas", frozenset((fold_value(t), fold_value(v)) for t, v in ddas)
        )

    def __str__(self) -> str:
        return format_slash(self)

    def attributes(self) -> list[tuple[str, str]]:
        """(key, value) in canonical order; DDAs last, keyed `DDA:type`."""
        return self._standard() + [(f"DDA:{t}", v) for t, v in self.ddas]

    def matches_prefix(self, prefix: ORAddress) -> bool:
        """True if every attribute the prefix sets is equal here (X.411 comparison).

        Comparison ignores case and leading, trailing and repeated spaces; a
        prefix with the blank ADMD matches any ADMD.
        """
        mine = self._folded
        for key, value in prefix._folded.items():
            if key == "ADMD" and not value:
                continue
            if mine.get(key) != value:
                return False
        return prefix._folded_ddas <= self._folded_ddas

    @property
    def specificity(self) -> int:
        """How many attributes this sets, as a routing prefix; the blank ADMD sets nothing."""
        count = len(self._folded) + len(self._folded_ddas)
        return count - 1 if self.admd == BLANK_ADMD else count

    def _standard(self) -> list[tuple[str, str]]:
        pairs = [("C", self.country), ("ADMD", self.admd)]
        optional = [
            ("PRMD", self.prmd),
            ("O", self.organization),
            *((f"OU{n}", unit) for n, unit in enumerate(self.org_units, 1)),
            ("S", self.surname),
            ("G", self.given_name),
            ("I", self.initials),
            ("Q", self.generation),
            ("CN", self.common_name),
            ("X121", self.x121),
            ("N-ID", self.numeric_user_id),
            ("T-ID", self.terminal_id),
            ("T-TY", self.terminal_type),
        ]
        pairs.extend((key, value) for key, value in optional if value is not None)
        return pairs


def fold_value(value: str) -> str:
    """The X.411 comparison form of a value: case and surplus spaces do not count."""
    return " ".join(value.split()).casefold()


# Texts parsed recently: a relaying MTA sees the same few originators, recipients and
# domains in every message. ORAddress is frozen, so one instance can serve them all;
# texts longer than any valid address could be are not kept.
PARSE_CACHE_SIZE = 4096
_CACHEABLE_TEXT = 1024


def parse_oraddress(text: str) -> ORAddress:
    """Parse the slash form (`/C=GB/ADMD= /S=Smith/`) or the semicolon form (`c=GB;s=Smith`).

    Labels are case-insensitive with the usual aliases; a missing ADMD is the blank
    ADMD (RFC 1685). Raises AddressError with the reason.
    """
    if len(text) > _CACHEABLE_TEXT:
        return _parse_oraddress(text)
    return _parse_cached(text)


def parse_global_domain(text: str) -> ORAddress:
    """Parse a GlobalDomainIdentifier in O/R text form (`/C=GB/ADMD=TEST/PRMD=PPTEST/`).

    X.411's GlobalDomainIdentifier is a country-name, an administration-domain-name and,
    optionally, a private-domain-identifier: nothing else.
    """
    address = parse_oraddress(text)
    keys = {key for key, _ in address.attributes()}
    if not keys <= {"C", "ADMD", "PRMD"}:
        raise AddressError(f"a global domain identifier has only C, ADMD, PRMD: {text!r}")
    return address


def _parse_oraddress(text: str) -> ORAddress:
    body = _strip_identifier(text)
    slash = body.startswith("/")
    items = _tokenize(body, "/", 1) if slash else _tokenize(body, ";", 0)
    if not items:
        raise AddressError("empty O/R address")
    fields: dict[str, str] = {}
    seen: set[str] = set()
    units: list[str | None] = [None] * UB_ORGANIZATIONAL_UNITS
    ddas: list[tuple[str, str]] = []
    for label, value in items:
        key, dda_type = _classify(label)
        if dda_type is not None:
            ddas.append((dda_type, value))
        elif key == "OU":
            if None not in units:
                raise AddressError(f"more than {UB_ORGANIZATIONAL_UNITS} organizational units (OU)")
            units[units.index(None)] = value
        elif key.startswith("OU"):
            slot = int(key[2]) - 1
            if units[slot] is not None:
                raise AddressError(f"repeated attribute {key}")
            units[slot] = value
        else:
            if key in seen:
                raise AddressError(f"repeated attribute {key}")
            seen.add(key)
            fields[key] = value
    if "C" not in fields:
        raise AddressError("missing C (country): an O/R address needs at least C")
    org_units: list[str] = []
    for n, unit in enumerate(units, 1):
        if unit is None:
            later = next((m for m in range(n + 1, len(units) + 1) if units[m - 1] is not None), 0)
            if later:
                raise AddressError(f"OU{later} given without OU{n}")
            break
        org_units.append(unit)
    return ORAddress(
        country=fields["C"],
        admd=fields.get("ADMD", BLANK_ADMD),
        prmd=fields.get("PRMD"),
        organization=fields.get("O"),
        org_units=tuple(org_units),
        surname=fields.get("S"),
        given_name=fields.get("G"),
        initials=fields.get("I"),
        generation=fields.get("Q"),
        common_name=fields.get("CN"),
        x121=fields.get("X121"),
        numeric_user_id=fields.get("N-ID"),
        terminal_id=fields.get("T-ID"),
        terminal_type=fields.get("T-TY"),
        ddas=tuple(ddas),
    )


_parse_cached = lru_cache(maxsize=PARSE_CACHE_SIZE)(_parse_oraddress)


def format_slash(addr: ORAddress) -> str:
    """The canonical RFC 1685 / RFC 2156 form: `/C=GB/ADMD= /PRMD=Acme/S=Smith/`."""
    text = addr._slash
    if text is None:
        text = "/" + "".join(
            f"{label}={value}/" for label, value in _encoded(addr, "/", upper=True)
        )
        object.__setattr__(addr, "_slash", text)
    return text


def slash_items(addr: ORAddress) -> list[tuple[str, str]]:
    """(attribute key, `LABEL=value/` as in the slash form) for each attribute, in canonical
    order: the pieces an RFC 2156 local part is made of when only some attributes go there."""
    encoded = _encoded(addr, "/", upper=True)
    return [
        (key, f"{label}={value}/")
        for (key, _), (label, value) in zip(addr.attributes(), encoded, strict=True)
    ]


def format_semicolon(addr: ORAddress) -> str:
    """The form users type: `c=GB;a= ;p=Acme;s=Smith`."""
    return ";".join(f"{label}={value}" for label, value in _encoded(addr, ";", upper=False))


def is_oraddress_text(text: str) -> bool:
    """Whether text is meant as an O/R address rather than a mailbox (a cheap heuristic).

    Slash form: starts with "/" and has an "="; semicolon form: a `key=value` item
    with a known key. Anything that parses as a mailbox is a mailbox.
    """
    body = _strip_identifier(text).strip()
    if body.startswith("/"):
        looks = "=" in body
    else:
        looks = any(
            _is_known_label(item.partition("=")[0]) for item in body.split(";") if "=" in item
        )
    if looks and "@" in body:
        try:
            parse_mailbox(body)
        except AddressError:
            return True
        return False
    return looks


# --- text forms -----------------------------------------------------------------------------


def _encoded(addr: ORAddress, delim: str, *, upper: bool) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in addr.attributes():
        if key.startswith("DDA:"):
            dda_type = key[4:].replace("=", "==").replace(delim, delim + delim)
            label = f"DDA:{dda_type}" if upper else f"dda:{dda_type}"
            encoded = ps_encode(value)
            if encoded.startswith("="):
                # "DDA:t==x" would read as type "t=x"; (061) is the same "=".
                encoded = "(061)" + encoded[1:]
        else:
            label = key if upper else _SHORT[key]
            encoded = ps_encode(value)
        pairs.append((label, encoded.replace(delim, delim + delim)))
    return pairs


def ps_encode(value: str) -> str:
    """RFC 2156 §4.3.2 printable-string encoding: `jo@x` → `jo(a)x`, `$` → `(036)`."""
    out: list[str] = []
    for ch in value:
        if ch in _ESCAPE_OF:
            out.append(_ESCAPE_OF[ch])
        elif ch in _PRINTABLE:
            out.append(ch)
        else:
            out.append(f"({ord(ch):03d})")
    return "".join(out)


def _strip_identifier(text: str) -> str:
    # F.401 Annex F: an address may be prefaced by the identifier "X.400:".
    body = text.lstrip().rstrip("\r\n")
    if body[:6].lower() == "x.400:":
        body = body[6:].lstrip()
    return body


def _tokenize(text: str, delim: str, start: int) -> list[tuple[str, str]]:
    """(label, value) items, escapes resolved; a delimiter may be followed by spaces."""
    items: list[tuple[str, str]] = []
    i, n = start, len(text)
    while i < n:
        while i < n and text[i] == " ":
            i += 1
        if i == n:
            break
        label, i = _read_label(text, i, delim)
        value, i = _read_value(text, i, delim)
        items.append((label, value))
    return items


def _read_label(text: str, i: int, delim: str) -> tuple[str, int]:
    """The label starting at i and the index after its "="; a DDA type may hold `==`."""
    chars: list[str] = []
    dda = False
    n = len(text)
    while i < n:
        ch = text[i]
        doubled = i + 1 < n and text[i + 1] == ch
        if ch == "=":
            if dda and doubled:
                chars.append("=")
                i += 2
                continue
            return "".join(chars).strip(), i + 1
        if ch == delim:
            if dda and doubled:
                chars.append(delim)
                i += 2
                continue
            break
        chars.append(ch)
        i += 1
        if not dda and ch in ":.":
            dda = "".join(chars).strip().lower() in _DDA_PREFIXES
    label = "".join(chars).strip()
    if not label:
        raise AddressError(f"empty attribute (two {delim!r} in a row?)")
    raise AddressError(f"{label!r} is not key=value")


def _read_value(text: str, i: int, delim: str) -> tuple[str, int]:
    """The value starting at i, unescaped, and the index after its delimiter."""
    chars: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == delim:
            if i + 1 < n and text[i + 1] == delim:
                chars.append(delim)
                i += 2
                continue
            return "".join(chars), i + 1
        if ch == "$":
            # RFC 2156 §4.1.3 quotes "/" and "=" with "$"; before a letter or digit it
            # would silently vanish, so that is refused rather than guessed at.
            quoted = text[i + 1] if i + 1 < n else ""
            if not quoted or quoted.isalnum() or not quoted.isascii():
                raise AddressError("'$' quotes the next / or = (RFC 2156); write (036) for a '$'")
            chars.append(quoted)
            i += 2
            continue
        if ch == "(":
            close = text.find(")", i, i + 6)
            if close == -1:
                raise AddressError(
                    f"bad escape at {text[i : i + 6]!r}: an escape is (a), (p), (b), (q), (u), "
                    "(l), (r) or (ddd); write (l) for a '('"
                )
            chars.append(_unescape(text[i + 1 : close]))
            i = close + 1
            continue
        if ch == ")":
            raise AddressError("unmatched ')' in a value; write (r) for a ')'")
        chars.append(ch)
        i += 1
    return "".join(chars), n


def _unescape(code: str) -> str:
    named = _NAMED_ESCAPES.get(code.lower())
    if named is not None:
        return named
    if len(code) == 3 and code.isascii() and code.isdigit():
        value = int(code)
        if 32 <= value <= 126:
            return chr(value)
        raise AddressError(f"escape ({code}) is not a printable ASCII character")
    raise AddressError(
        f"unknown escape ({code}): an escape is (a), (p), (b), (q), (u), (l), (r) or (ddd)"
    )


def _classify(label: str) -> tuple[str, str | None]:
    """(canonical key, None) or ("DDA", type)."""
    lowered = label.lower()
    for prefix in _DDA_PREFIXES:
        if lowered.startswith(prefix):
            return "DDA", label[len(prefix) :].strip()
    if lowered in _DDA_SHORTHANDS:
        return "DDA", _DDA_SHORTHANDS[lowered]
    key = _ALIASES.get(lowered)
    if key is None:
        raise AddressError(
            f"unknown attribute {label!r} (known: {', '.join(ATTRIBUTE_ORDER)}, DDA:type)"
        )
    return key, None


def _is_known_label(label: str) -> bool:
    lowered = label.strip().lower()
    return lowered in _ALIASES or lowered in _DDA_SHORTHANDS or lowered.startswith(_DDA_PREFIXES)


# --- validation -----------------------------------------------------------------------------


def _check_text(key: str, value: str, bound: int) -> None:
    if not value:
        raise AddressError(f"{key} is empty")
    for ch in value:
        if not 32 <= ord(ch) <= 126:
            raise AddressError(f"{key}: character {ch!r} cannot be carried (printable ASCII only)")
    length = len(ps_encode(value))
    if length > bound:
        raise AddressError(
            f"{key} is {length} characters as a PrintableString; X.402 allows at most {bound}"
        )


def _check_numeric(key: str, value: str | None, bound: int) -> None:
    if value is None:
        return
    if not (value.isascii() and value.isdigit()):
        raise AddressError(f"{key} must be digits, not {value!r}")
    if len(value) > bound:
        raise AddressError(f"{key} is {len(value)} digits; X.402 allows at most {bound}")


def _check_dda_type(dda_type: str) -> None:
    if not dda_type:
        raise AddressError("DDA type is empty")
    if any(ch not in _PRINTABLE for ch in dda_type):
        raise AddressError(f"DDA type {dda_type!r} must be a PrintableString")
    if dda_type != dda_type.strip():
        # The text forms could not tell "DDA: x" from "DDA:x".
        raise AddressError(f"DDA type {dda_type!r} has leading or trailing spaces")
    if len(dda_type) > UB_DDA_TYPE:
        raise AddressError(
            f"DDA type {dda_type!r} is {len(dda_type)} characters; X.402 allows at most "
            f"{UB_DDA_TYPE}"
        )
