"""Building the SMTP server's settings, TLS context and users from the configuration."""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from waypost.arrival import Admit
from waypost.clock import Clock
from waypost.config import Config
from waypost.config.schema import SmtpConfig, SmtpListenerConfig
from waypost.config.values import parse_address
from waypost.net.listener import ConnectionLimits
from waypost.net.tls import aead_only
from waypost.routing import RoutingTable
from waypost.smtp.auth import AuthUsers, UsersFileError
from waypost.smtp.policy import DiskGuard, RelayPolicy
from waypost.smtp.server import SmtpServerConfig
from waypost.smtp.server_settings import ServerSettings

_T = TypeVar("_T")


class SmtpSetupError(ValueError):
    """A file named in [smtp] cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class SmtpFiles:
    """What the files named in [smtp] hold, loaded: None where none is named."""

    tls: ssl.SSLContext | None
    users: AuthUsers | None


def load_smtp_files(config: Config) -> tuple[SmtpFiles, list[tuple[str, str]]]:
    """The TLS context and the AUTH users of [smtp], and (key, reason) for each file that
    cannot be used: what `serve` refuses to start on, and `waypost config check` reports."""
    smtp = config.smtp
    problems: list[tuple[str, str]] = []
    tls = users = None
    if smtp.tls_cert and smtp.tls_key:  # one without the other is the schema's to report
        try:
            tls = tls_context(smtp.tls_cert, smtp.tls_key)
        except SmtpSetupError as exc:
            problems.append(_key_and_reason(exc))
    if smtp.auth_users:
        try:
            _readable("smtp.auth_users", smtp.auth_users)
            users = AuthUsers.load(smtp.auth_users)
        except SmtpSetupError as exc:
            problems.append(_key_and_reason(exc))
        except UsersFileError as exc:
            problems.append(("smtp.auth_users", str(exc)))
    return SmtpFiles(tls, users), problems


def tls_context(cert: str, key: str, section: str = "smtp") -> ssl.SSLContext:
    """The STARTTLS context; SmtpSetupError names the file at fault by its key in `section`
    (`smtp.tls_cert: …`)."""
    cert_key, key_key = f"{section}.tls_cert", f"{section}.tls_key"
    _readable(cert_key, cert)
    _readable(key_key, key)
    context = aead_only(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    try:
        # A password callback, so that an encrypted key fails here instead of OpenSSL asking
        # for its pass phrase on a terminal a daemon does not have.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except (OSError, ssl.SSLError) as exc:
        raise SmtpSetupError(_tls_problem(cert, key, exc, cert_key, key_key)) from None
    return context


def postmaster_domain(config: Config, routing: RoutingTable) -> str:
    """Where `RCPT TO:<Postmaster>` goes (RFC 5321 §4.5.1): the hostname if it is a local
    domain, else the first local domain ("" — the hostname — when there is none)."""
    hostname = config.server.hostname
    if routing.is_local_domain(hostname) or not config.local.domains:
        return ""
    return config.local.domains[0]


def _readable(key: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SmtpSetupError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None


def _tls_problem(cert: str, key: str, exc: Exception, cert_key: str, key_key: str) -> str:
    if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
        return f"{key_key}: {key} is not the private key of the certificate in {cert}"
    try:
        ssl.create_default_context().load_verify_locations(cafile=cert)
    except (OSError, ssl.SSLError):
        return f"{cert_key}: {cert} holds no PEM certificate"
    try:
        with open(key, "rb") as file:
            encrypted = b"ENCRYPTED" in file.read(64 * 1024)
    except OSError:
        encrypted = False
    if encrypted:
        return f"{key_key}: {key} is encrypted: Waypost reads an unencrypted PEM key"
    return f"{key_key}: {key} holds no PEM private key ({exc})"


def _key_and_reason(exc: SmtpSetupError) -> tuple[str, str]:
    key, _, reason = str(exc).partition(": ")
    return key, reason


def smtp_server_config(
    config: Config, routing: RoutingTable, admit: Admit, clock: Clock
) -> SmtpServerConfig:
    smtp = config.smtp
    files, problems = load_smtp_files(config)
    if problems:
        raise SmtpSetupError(": ".join(problems[0]))
    tls, users = files.tls, files.users
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
        data_deadline=smtp.data_deadline,
        min_data_rate=smtp.min_data_rate,
        tls=tls,
        users=users,
    )


def smtp_limits(smtp: SmtpConfig) -> ConnectionLimits:
    """The connection limits of the `smtp.listen` listener."""
    return ConnectionLimits(
        max_total=smtp.max_connections,
        max_per_client=smtp.max_connections_per_client,
        max_per_network=smtp.max_connections_per_network,
    )


@dataclass(frozen=True, slots=True)
class ListenerSetup:
    """One [[smtp.listener]], built: its name for the log, where, its config and limits."""

    name: str
    addresses: list[tuple[str, int]]
    config: SmtpServerConfig
    limits: ConnectionLimits


def smtp_listeners(config: Config, base: SmtpServerConfig) -> list[ListenerSetup]:
    """Each [[smtp.listener]] from the `smtp.listen` listener's config `base` (its TLS
    context, users and policy are shared); raises SmtpSetupError for a submission port
    without TLS or users."""
    return [
        _listener(config.smtp, f"smtp.listener[{i}]", listener, base)
        for i, listener in enumerate(config.smtp.listener)
    ]


def _listener(
    smtp: SmtpConfig, key: str, listener: SmtpListenerConfig, base: SmtpServerConfig
) -> ListenerSetup:
    submission = listener.mode != "smtp"
    if submission and (base.tls is None or base.users is None):
        raise SmtpSetupError(
            f"{key}.mode: {listener.mode} needs smtp.tls_cert, smtp.tls_key and smtp.auth_users"
        )
    settings = dataclasses.replace(
        base.settings,
        max_message_size=_given(listener.max_message_size, smtp.max_message_size),
        auth_required=submission,
    )
    server_config = dataclasses.replace(
        base,
        settings=settings,
        idle_timeout=_given(listener.idle_timeout, smtp.idle_timeout),
        data_timeout=_given(listener.data_timeout, smtp.data_timeout),
        implicit_tls=listener.mode == "submissions",
        trust_networks=not submission,
    )
    limits = ConnectionLimits(
        max_total=_given(listener.max_connections, smtp.max_connections),
        max_per_client=_given(listener.max_connections_per_client, smtp.max_connections_per_client),
        max_per_network=_given(
            listener.max_connections_per_network, smtp.max_connections_per_network
        ),
    )
    return ListenerSetup(
        name=f"{listener.mode} {listener.address}",
        addresses=[parse_address(listener.address)],
        config=server_config,
        limits=limits,
    )


def _given(value: _T | None, default: _T) -> _T:
    return default if value is None else value
