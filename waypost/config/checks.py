"""What the schema's types cannot declare: values with a syntax of their own, keys that go
together, and names that must be unique."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterator

from waypost.address import AddressError, mailbox_name, parse_domain, parse_oraddress
from waypost.address.oraddress import parse_global_domain
from waypost.config.schema import Config, SmtpConfig, X400PeerConfig
from waypost.config.values import is_domain_name, parse_address, selector_bytes
from waypost.nexthop import parse_next_hop

MAX_SELECTOR = 32  # octets
# An ADMD attribute as written, in the slash or the semicolon form (`/ADMD= /`, `;a= `).
_ADMD_WRITTEN = re.compile(r"(?:\A|[/;])\s*(?:admd|a)\s*=", re.IGNORECASE)


def check_values(config: Config) -> Iterator[tuple[str, str]]:
    """(key, reason) for every value the schema accepted but Waypost cannot use."""
    yield from _server(config)
    yield from _store(config)
    yield from _queue(config)
    yield from _local(config)
    yield from _smtp(config)
    yield from _x400(config)
    yield from _mixer(config)
    yield from _amhs(config)
    yield from _listen("metrics", (config.metrics.listen,), single=True)
    yield from _listen("console", (config.console.listen,), single=True)
    for i, route in enumerate(config.route):
        for field in ("match", "next_hop"):
            if not getattr(route, field).strip():
                yield f"route[{i}].{field}", "must not be empty"


def _server(config: Config) -> Iterator[tuple[str, str]]:
    if not is_domain_name(config.server.hostname):
        yield "server.hostname", f"{config.server.hostname!r} is not a valid host name"


def _store(config: Config) -> Iterator[tuple[str, str]]:
    store, cluster = config.store, config.cluster
    if store.backend == "postgresql":
        if not store.dsn.strip():
            yield "store.dsn", 'is needed with backend = "postgresql" (a libpq connection string)'
        else:
            # Imported here: only a configuration that uses PostgreSQL loads its driver.
            import psycopg  # noqa: PLC0415
            from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

            try:
                conninfo_to_dict(store.dsn)
            except psycopg.Error as exc:
                yield "store.dsn", f"is not a valid libpq connection string: {exc}"
    elif store.dsn.strip():
        yield "store.dsn", 'is for backend = "postgresql"; the SQLite database is store.path'
    if cluster.node_timeout < 2 * cluster.heartbeat_interval:
        yield (
            "cluster.node_timeout",
            f"{cluster.node_timeout:g} is less than twice cluster.heartbeat_interval "
            f"({cluster.heartbeat_interval:g}): a node would be declared lost between two "
            "heartbeats",
        )
    if cluster.node and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", cluster.node):
        yield "cluster.node", f"{cluster.node!r}: letters, digits, '.', '_' and '-', at most 63"


def _queue(config: Config) -> Iterator[tuple[str, str]]:
    queue = config.queue
    if queue.min_backoff > queue.max_backoff:
        yield (
            "queue.min_backoff",
            f"{queue.min_backoff:g} is more than queue.max_backoff ({queue.max_backoff:g})",
        )


def _local(config: Config) -> Iterator[tuple[str, str]]:
    local = config.local
    if local.lmtp.strip():
        try:
            hop = parse_next_hop(local.lmtp)
        except ValueError as exc:
            yield "local.lmtp", str(exc)
        else:
            if hop.transport != "lmtp":
                yield "local.lmtp", f"{local.lmtp!r} is not 'lmtp:[host]:port' or 'lmtp:unix:/path'"
    for i, domain in enumerate(local.domains):
        try:
            parse_domain(domain)
        except AddressError as exc:
            yield f"local.domains[{i}]", f"{domain!r} is not a valid domain name: {exc}"
    for i, prefix in enumerate(local.oraddresses):
        if not prefix.strip():
            yield f"local.oraddresses[{i}]", "must not be empty"
    for i, mailbox in enumerate(local.mailboxes):
        # Each becomes a directory name under the Maildir root: the rule the SMTP server
        # applies at RCPT and the Maildir delivery when it writes, so none is unreachable.
        try:
            mailbox_name(mailbox)
        except AddressError:
            yield (
                f"local.mailboxes[{i}]",
                f"{mailbox!r} is not a usable local part (empty, starts with '.', has '/', "
                "a space or another character a mailbox name cannot have)",
            )
    for oraddress, mailbox in local.mime_mailboxes.items():
        key = f"local.mime_mailboxes.{oraddress!r}"
        try:
            parse_oraddress(oraddress)
        except AddressError as exc:
            yield key, f"{oraddress!r} is not an O/R address: {exc}"
        try:
            mailbox_name(mailbox)
        except AddressError:
            yield key, f"{mailbox!r} is not a usable Maildir mailbox name"
    for i, oraddress in enumerate(local.x400_mailboxes):
        try:
            parse_oraddress(oraddress)
        except AddressError as exc:
            yield f"local.x400_mailboxes[{i}]", f"{oraddress!r} is not an O/R address: {exc}"


def _smtp(config: Config) -> Iterator[tuple[str, str]]:
    smtp = config.smtp
    for i, network in enumerate(smtp.relay_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            yield f"smtp.relay_networks[{i}]", str(exc)
    if bool(smtp.tls_cert) != bool(smtp.tls_key):
        yield "smtp.tls_cert", "tls_cert and tls_key go together: give both or neither"
    if smtp.auth_users and not smtp.tls_cert:
        # AUTH is offered over TLS only: without a certificate it would never be offered.
        yield (
            "smtp.auth_users",
            "AUTH is offered over TLS only: set smtp.tls_cert and smtp.tls_key too",
        )
    yield from _listen("smtp", smtp.listen)
    yield from _smtp_listeners(smtp)


def _smtp_listeners(smtp: SmtpConfig) -> Iterator[tuple[str, str]]:
    seen: dict[tuple[str, int], str] = {}
    for i, text in enumerate(smtp.listen):
        with contextlib.suppress(ValueError):  # told by _listen
            seen[parse_address(text)] = f"smtp.listen[{i}]"
    for i, listener in enumerate(smtp.listener):
        key = f"smtp.listener[{i}]"
        try:
            address = parse_address(listener.address)
        except ValueError as exc:
            yield f"{key}.address", str(exc)
        else:
            if address in seen:
                yield f"{key}.address", f"{listener.address!r} is also {seen[address]}"
            seen[address] = f"{key}.address"
        if listener.mode != "smtp":
            # RFC 6409 §4.3 / RFC 8314: a submission service authenticates its users, and
            # AUTH is offered only under TLS.
            if not smtp.tls_cert:
                yield f"{key}.mode", f"{listener.mode} needs smtp.tls_cert and smtp.tls_key"
            if not smtp.auth_users:
                yield f"{key}.mode", f"{listener.mode} needs smtp.auth_users"


def _x400(config: Config) -> Iterator[tuple[str, str]]:
    x400 = config.x400
    yield from _listen("x400", x400.listen)
    try:
        parse_global_domain(x400.global_domain)
    except AddressError as exc:
        yield "x400.global_domain", f"must be /C=../ADMD=../[PRMD=../]: {exc}"
    else:
        # X.411's GlobalDomainIdentifier has a country-name and an administration-domain-name
        # (the PRMD alone is optional): an ADMD left out is a mistake, not a blank ADMD.
        if not _ADMD_WRITTEN.search(x400.global_domain):
            yield (
                "x400.global_domain",
                "names no ADMD: write /C=../ADMD=../[PRMD=../], with ADMD= (a space) for a "
                "blank one",
            )
    seen: set[str] = set()
    for i, peer in enumerate(x400.peer):
        if peer.name in seen:
            yield f"x400.peer[{i}].name", f"{peer.name!r} is configured twice"
        seen.add(peer.name)
        yield from _peer(f"x400.peer[{i}]", peer)


def _peer(key: str, peer: X400PeerConfig) -> Iterator[tuple[str, str]]:
    try:
        parse_address(peer.address)
    except ValueError as exc:
        yield f"{key}.address", str(exc)
    if peer.permanent_associations > peer.max_associations:
        yield (
            f"{key}.permanent_associations",
            f"at most max_associations ({peer.max_associations}), not "
            f"{peer.permanent_associations}",
        )
    for field in ("t_selector", "s_selector", "p_selector"):
        try:
            if len(selector_bytes(getattr(peer, field))) > MAX_SELECTOR:
                yield f"{key}.{field}", f"at most {MAX_SELECTOR} octets"
        except ValueError as exc:
            yield f"{key}.{field}", str(exc)


def _listen(
    section: str, listen: tuple[str, ...], *, single: bool = False
) -> Iterator[tuple[str, str]]:
    for i, text in enumerate(listen):
        try:
            parse_address(text)
        except ValueError as exc:
            yield f"{section}.listen" if single else f"{section}.listen[{i}]", str(exc)


def _mixer(config: Config) -> Iterator[tuple[str, str]]:
    """The gateway's own addresses; its mapping tables are checked where they are built
    (waypost.setup.mixer), with the RFC 2156 rules."""
    mixer = config.mixer
    if mixer.enabled:
        for key in ("domain", "oraddress"):
            if not getattr(mixer, key).strip():
                yield f"mixer.{key}", "must be given when mixer.enabled is true"
    if mixer.domain.strip() and not is_domain_name(mixer.domain.strip()):
        yield "mixer.domain", f"{mixer.domain!r} is not a valid domain name"
    if mixer.oraddress.strip():
        try:
            parse_oraddress(mixer.oraddress)
        except AddressError as exc:
            yield "mixer.oraddress", f"{mixer.oraddress!r} is not an O/R address: {exc}"
    if mixer.dns_x400_root.strip() and not is_domain_name(mixer.dns_x400_root.strip()):
        yield "mixer.dns_x400_root", f"{mixer.dns_x400_root!r} is not a valid domain name"
    for i, server in enumerate(mixer.dns_nameservers):
        if not _nameserver(server):
            yield (
                f"mixer.dns_nameservers[{i}]",
                f"{server!r} is not an IP address, IP:port or [IPv6]:port",
            )


def _amhs(config: Config) -> Iterator[tuple[str, str]]:
    """The gateway's address, listeners and AFTN stations; the register file is read where
    it is loaded (waypost.setup.amhs)."""
    amhs = config.amhs
    if amhs.enabled and not amhs.register:
        yield "amhs.register", "must be given when amhs.enabled is true"
    if amhs.enabled and not amhs.aftn_address:
        yield "amhs.aftn_address", "must be given when amhs.enabled is true"
    yield from _listen("amhs", amhs.listen)
    seen: set[str] = set()
    for i, peer in enumerate(amhs.peer):
        if peer.name in seen:
            yield f"amhs.peer[{i}].name", f"{peer.name!r} is configured twice"
        seen.add(peer.name)
        try:
            parse_address(peer.address)
        except ValueError as exc:
            yield f"amhs.peer[{i}].address", str(exc)


def _nameserver(text: str) -> bool:
    """An IP address, with an optional port (`192.0.2.1:5353`, `[2001:db8::1]:53`)."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return port.isdigit() and 1 <= int(port) <= 65535
