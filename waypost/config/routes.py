"""The routing table of a configuration: `[[route]]`, `local.domains` and `local.oraddresses`
as `waypost.routing` reads them, every bad entry a ConfigError."""

from __future__ import annotations

from typing import TYPE_CHECKING

from waypost.config.errors import ConfigError
from waypost.config.schema import Config

if TYPE_CHECKING:
    from waypost.routing import RoutingTable


def build_routing_table(config: Config) -> RoutingTable:
    """The routing table of a Config; a bad entry is a ConfigError naming `route[N].field`."""
    table, errors = _build(config, check_peers=True)
    if errors:
        raise errors[0]
    return table


def routing_errors(config: Config, *, check_peers: bool) -> list[ConfigError]:
    """Every bad routing entry, found in one pass; `x400:` next hops are checked against
    the configured peers only when `check_peers` (not when a peer entry was itself bad)."""
    return _build(config, check_peers=check_peers)[1]


def _build(config: Config, *, check_peers: bool) -> tuple[RoutingTable, list[ConfigError]]:
    # Imported here: routing is a layer above config.
    from waypost.nexthop import LOCAL, parse_next_hop  # noqa: PLC0415
    from waypost.routing import RouteEntry, RoutingTable  # noqa: PLC0415

    # The gateway's own domain and O/R address route to it (RFC 2156 §4's fallbacks),
    # ahead of the [[route]] entries: one of those for the same match is a duplicate.
    mixer = config.mixer
    implicit = (
        [
            RouteEntry(match=match, next_hop="gateway:mixer", key=f"mixer.{key}")
            for key, match in (("domain", mixer.domain), ("oraddress", mixer.oraddress))
            if match.strip()
        ]
        if mixer.enabled
        else []
    )
    table, errors = RoutingTable.build(
        [*implicit, *(RouteEntry(match=r.match, next_hop=r.next_hop) for r in config.route)],
        local_domains=config.local.domains,
        local_oraddresses=config.local.oraddresses,
        local_hop=parse_next_hop(config.local.lmtp) if config.local.lmtp.strip() else LOCAL,
        x400_peers=[peer.name for peer in config.x400.peer] if check_peers else None,
    )
    return table, [ConfigError(config.source, error.key, error.reason) for error in errors]
