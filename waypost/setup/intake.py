"""The intake and the MTA database's path as the configuration sets them up: what `serve`
and the commands that enqueue share, without the service (and its delivery agents, its
HTTP servers) that `waypost-sendmail` has no use for."""

from __future__ import annotations

from waypost.clock import Clock
from waypost.config import Config, build_routing_table
from waypost.intake import Intake
from waypost.store.location import DatabaseLocation


def build_intake(config: Config, clock: Clock) -> Intake:
    """The intake as the configuration sets it up: its routing table, domain and limits."""
    return Intake(
        build_routing_table(config),
        clock=clock,
        x400_domain=config.x400.global_domain,
        max_received=config.smtp.max_hops,
        gateway=config.mixer.enabled,
    )


def database_path(config: Config) -> str:
    """The MTA database of a loaded Config (its loader put it under the data directory
    unless a path was given)."""
    return config.store.path


def database_location(config: Config) -> DatabaseLocation:
    """The MTA database the configuration names: its SQLite file or its PostgreSQL database."""
    if config.store.backend == "postgresql":
        return DatabaseLocation("postgresql", config.store.dsn)
    return DatabaseLocation("sqlite", config.store.path)
