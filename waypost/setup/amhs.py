"""Building the AMHS pieces from the configuration: the register of AMHS management domains
([amhs] register), read once and checked row by row, and the AFTN/AMHS gateway's settings
and stations."""

from __future__ import annotations

from waypost.amhs.addressing import AddressingError, Register, load_register
from waypost.amhs.aftn import Framing
from waypost.amhs.ats import EndOfHeading
from waypost.amhs.convert import GatewaySettings
from waypost.config import Config, parse_address
from waypost.delivery.aftn import AftnStation


def build_register(config: Config) -> tuple[Register | None, list[tuple[str, str]]]:
    """The register [amhs] names (None when it names none), and (key, reason) for a file
    that cannot be used: what `serve` refuses to start on and `waypost config check`
    reports."""
    path = config.amhs.register
    if not path:
        return None, []
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [("amhs.register", f"cannot read {path}: {reason}")]
    try:
        return load_register(text, name=path), []
    except AddressingError as exc:
        return None, [("amhs.register", str(exc))]


def amhs_problems(config: Config) -> list[tuple[str, str]]:
    """(key, reason) for the AMHS files the configuration names."""
    return build_register(config)[1]


def gateway_settings(config: Config, register: Register) -> GatewaySettings:
    """What the AFTN/AMHS gateway's conversions take from [amhs] and [x400]."""
    amhs = config.amhs
    return GatewaySettings(
        register=register,
        aftn_address=amhs.aftn_address,
        global_domain=config.x400.global_domain,
        end_of_heading=EndOfHeading(amhs.end_of_heading),
        max_text_length=amhs.max_text_length,
        extended_domains=frozenset(d.strip().casefold() for d in amhs.extended_domains),
    )


def aftn_stations(config: Config) -> list[AftnStation]:
    """The [[amhs.peer]] stations; their addresses are valid in a checked Config."""
    stations = []
    for peer in config.amhs.peer:
        host, port = parse_address(peer.address)
        stations.append(
            AftnStation(
                name=peer.name,
                host=host,
                port=port,
                framing=Framing(peer.framing),
                channel=peer.channel,
                connect_timeout=peer.connect_timeout,
            )
        )
    return stations
