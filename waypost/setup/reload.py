"""A reload (SIGHUP): which keys wait for a restart, and the run-time settings a new
configuration gives, all built before any is put in force."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from waypost.arrival import Admit
from waypost.clock import Clock
from waypost.config import Config, build_routing_table, toml_value
from waypost.delivery.smtp import ClientSettings, TlsPolicy
from waypost.net.listener import ConnectionLimits
from waypost.queue.manager import QueueSettings
from waypost.queue.policy import RetryPolicy
from waypost.routing import RoutingTable
from waypost.setup.smtp import ListenerSetup, smtp_limits, smtp_listeners, smtp_server_config
from waypost.setup.x400 import x400_settings
from waypost.smtp.server import SmtpServerConfig
from waypost.store.base import Lifetimes
from waypost.x400.settings import X400Settings

# What a running MTA cannot take over (as Postfix's "requires restart" parameters): where
# the database and the local stores are, what the objects already stored and the open
# listening sockets are built on, and the MTA's identity written into trace and
# identifiers. A reload keeps their values in force and says so (event 1112).
RESTART_ONLY = (
    "server.data_dir",
    "server.hostname",
    "store.backend",
    "store.path",
    "store.dsn",
    "cluster.node",
    "cluster.heartbeat_interval",
    "cluster.node_timeout",
    "store.lease_seconds",
    "store.max_batch",
    "queue.delivery_concurrency",
    "queue.destination_concurrency",
    "queue.urgent_share",
    "local.maildir",
    "local.mailboxes",
    "local.x400_store",
    "local.x400_mailboxes",
    "local.mime_mailboxes",
    "smtp.listen",
    "smtp.listener",
    "x400.listen",
    "x400.mta_name",
    "x400.global_domain",
    "mixer.enabled",
    "amhs.enabled",
    "amhs.register",
    "amhs.end_of_heading",
    "amhs.extended_domains",
    "amhs.aftn_address",
    "amhs.listen",
    "amhs.framing",
    "amhs.peer",
    "amhs.max_text_length",
    "amhs.record_retention",
    "mixer.domain",
    "mixer.oraddress",
    "mixer.mapping",
    "mixer.convert_on_arrival",
    "mixer.dns",
    "mixer.dns_x400_root",
    "mixer.dns_nameservers",
    "tracking.enabled",
    "tracking.path",
    "metrics.enabled",
    "metrics.listen",
    "metrics.max_next_hops",
    "console.enabled",
    "console.listen",
)


@dataclass(frozen=True, slots=True)
class PendingRestart:
    """A restart-only key whose new value waits for the next start."""

    key: str
    old: str
    new: str


def keep_restart_only(old: Config, new: Config) -> tuple[Config, list[PendingRestart]]:
    """`new` with the restart-only keys as `old` has them, and the changes so held back."""
    pending = []
    for key in RESTART_ONLY:
        section_name, _, name = key.partition(".")
        old_section = getattr(old, section_name, None)
        new_section = getattr(new, section_name, None)
        if not hasattr(old_section, name) or not hasattr(new_section, name):
            continue  # a key this version does not have
        before, after = getattr(old_section, name), getattr(new_section, name)
        if before == after:
            continue
        pending.append(PendingRestart(key, _shown(before), _shown(after)))
        assert isinstance(new_section, msgspec.Struct)
        kept = msgspec.structs.replace(new_section, **{name: before})
        new = msgspec.structs.replace(new, **{section_name: kept})
    return new, pending


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ (a section's table as one key, `route` whole)."""
    keys = []
    for field in msgspec.structs.fields(Config):
        if field.name == "source":
            continue
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before == after:
            continue
        if isinstance(before, msgspec.Struct):
            keys += [
                f"{field.name}.{f.name}"
                for f in msgspec.structs.fields(before)
                if getattr(before, f.name) != getattr(after, f.name)
            ]
        else:
            keys.append(field.name)
    return keys


def _shown(value: object) -> str:
    try:
        return toml_value(value)
    except TypeError:
        return repr(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTimeSettings:
    """Everything a reload puts in force, built from one configuration."""

    routing: RoutingTable
    smtp: SmtpServerConfig | None
    smtp_limits: ConnectionLimits
    smtp_listeners: list[ListenerSetup]  # each [[smtp.listener]], in the file's order
    x400: X400Settings
    x400_limits: ConnectionLimits
    client: ClientSettings
    retry: RetryPolicy
    queue: QueueSettings


def client_settings(config: Config) -> ClientSettings:
    """[smtp_client] for the SMTP delivery agent."""
    client = config.smtp_client
    return ClientSettings(
        helo_name=config.server.hostname,
        tls=TlsPolicy(client.tls),
        connect_timeout=client.connect_timeout,
        command_timeout=client.command_timeout,
        data_timeout=client.data_timeout,
        max_messages_per_connection=client.max_messages_per_connection,
        connection_cache_time=client.connection_cache_time,
    )


def retry_policy(config: Config) -> RetryPolicy:
    """[queue]'s back-off and lifetime."""
    q = config.queue
    return RetryPolicy(
        min_backoff=q.min_backoff, max_backoff=q.max_backoff, max_lifetime=q.max_lifetime
    )


def lifetimes(config: Config) -> Lifetimes:
    """[queue]'s lifetimes by priority, as the store applies them."""
    q = config.queue
    return Lifetimes(
        urgent=q.max_lifetime_urgent, normal=q.max_lifetime, non_urgent=q.max_lifetime_non_urgent
    )


def queue_settings(config: Config) -> QueueSettings:
    """[queue]'s scheduling and concurrency, and [store]'s lease, for the queue manager."""
    q = config.queue
    return QueueSettings(
        batch_size=q.batch_size,
        lease_seconds=config.store.lease_seconds,
        poll_interval=q.poll_interval,
        delivery_concurrency=q.delivery_concurrency,
        destination_concurrency=q.destination_concurrency,
        urgent_share=q.urgent_share,
    )


def run_time_settings(
    config: Config, admit: Admit, clock: Clock, *, smtp_listener: bool
) -> RunTimeSettings:
    """Build them all; SmtpSetupError (a TLS certificate or users file that cannot be used)
    or ValueError before anything is in force."""
    routing = build_routing_table(config)
    smtp, x400 = config.smtp, config.x400
    base = smtp_server_config(config, routing, admit, clock) if smtp_listener else None
    return RunTimeSettings(
        routing=routing,
        smtp=base,
        smtp_limits=smtp_limits(smtp),
        smtp_listeners=smtp_listeners(config, base) if base is not None else [],
        x400=x400_settings(config),
        x400_limits=ConnectionLimits(
            max_total=x400.max_connections, max_per_client=x400.max_connections_per_client
        ),
        client=client_settings(config),
        retry=retry_policy(config),
        queue=queue_settings(config),
    )
