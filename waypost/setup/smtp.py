"""Building the SMTP server's settings, TLS context and users from the configuration."""

from __future__ import annotations

import ssl
from pathlib import Path

from waypost.arrival import Admit
from waypost.clock import Clock
from waypost.config import Config
from waypost.net.tls import aead_only
from waypost.routing import RoutingTable
from waypost.smtp.auth import AuthUsers, UsersFileError
from waypost.smtp.policy import DiskGuard, RelayPolicy
from waypost.smtp.server import SmtpServerConfig
from waypost.smtp.server_settings import ServerSettings


class SmtpSetupError(ValueError):
    """A file named in [smtp] cannot be used; the message names the key."""


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = aead_only(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SmtpSetupError(f"smtp.tls_cert/smtp.tls_key: cannot load {cert}: {exc}") from None
    return context


def postmaster_domain(config: Config, routing: RoutingTable) -> str:
    """Where `RCPT TO:<Postmaster>` goes (RFC 5321 §4.5.1): the hostname if it is a local
    domain, else the first local domain ("" — the hostname — when there is none)."""
    hostname = config.server.hostname
    if routing.is_local_domain(hostname) or not config.local.domains:
        return ""
    return config.local.domains[0]


def smtp_server_config(
    config: Config, routing: RoutingTable, admit: Admit, clock: Clock
) -> SmtpServerConfig:
    smtp = config.smtp
    tls = tls_context(smtp.tls_cert, smtp.tls_key) if smtp.tls_cert else None
    users = None
    if smtp.auth_users:
        try:
            users = AuthUsers.load(smtp.auth_users)
        except UsersFileError as exc:
            raise SmtpSetupError(f"smtp.auth_users: {exc}") from None
    settings = ServerSettings(
        hostname=config.server.hostname,
        max_message_size=smtp.max_message_size,
        max_recipients=smtp.max_recipients,
        max_errors=smtp.max_errors,
        max_commands_before_transaction=smtp.max_commands_before_transaction,
        tls_available=tls is not None,
        auth_mechanisms=("PLAIN", "LOGIN") if users is not None else (),
        postmaster_domain=postmaster_domain(config, routing),
    )
    return SmtpServerConfig(
        settings=settings,
        policy=RelayPolicy(
            routing, smtp.relay_networks, mailboxes=frozenset(config.local.mailboxes)
        ),
        disk=DiskGuard(str(Path(config.server.data_dir)), smtp.min_free_space),
        admit=admit,
        clock=clock,
        idle_timeout=smtp.idle_timeout,
        data_timeout=smtp.data_timeout,
        tls=tls,
        users=users,
    )
