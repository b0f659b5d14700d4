"""Building the MIXER gateway's address mapper from `[mixer]`: its own addresses and the
RFC 2156 §4 mapping tables, every bad entry named by its key."""

from __future__ import annotations

from waypost.address import AddressError, parse_oraddress
from waypost.config import Config
from waypost.mixer.address_map import AddressMapper, Gateway, MappingEntry


def build_mapper(config: Config) -> AddressMapper:
    """The mapper of an enabled gateway; raises ValueError naming the key (a Config that
    `mixer_problems` passed has none)."""
    mapper, problems = _build(config)
    if problems or mapper is None:
        key, reason = problems[0] if problems else ("mixer.enabled", "the gateway is off")
        raise ValueError(f"{key}: {reason}")
    return mapper


def mixer_problems(config: Config) -> list[tuple[str, str]]:
    """(key, reason) for each mapping entry the gateway could not use."""
    return _build(config)[1] if config.mixer.enabled else []


def _build(config: Config) -> tuple[AddressMapper | None, list[tuple[str, str]]]:
    mixer = config.mixer
    problems: list[tuple[str, str]] = []
    to_x400: list[MappingEntry] = []
    to_rfc822: list[MappingEntry] = []
    for i, line in enumerate(mixer.mapping):
        key = f"mixer.mapping[{i}]"
        try:
            entry = MappingEntry.parse(line.oraddress, line.domain)
        except AddressError as exc:
            problems.append((key, str(exc)))
            continue
        if line.direction in ("both", "to-x400"):
            to_x400.append(entry)
        if line.direction in ("both", "to-rfc822"):
            to_rfc822.append(entry)
    try:
        gateway = Gateway(mixer.domain.strip(), parse_oraddress(mixer.oraddress))
    except AddressError:
        return None, problems  # config.checks names mixer.domain / mixer.oraddress
    try:
        mapper = AddressMapper(gateway, domain_to_oraddress=to_x400, oraddress_to_domain=to_rfc822)
    except AddressError as exc:
        problems.append(("mixer.mapping", str(exc)))
        return None, problems
    return mapper, problems
