"""The configuration: one TOML file, read with `tomllib` and validated into frozen structs.

Every problem is a `ConfigError` naming the file, the dotted key and the reason;
`waypost config check FILE` prints them all. docs/configuration.md documents each key.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from waypost.address import AddressError, parse_domain, parse_oraddress
from waypost.x400.p1_names import gdi_parts

if TYPE_CHECKING:
    from waypost.routing import RoutingTable

EMBEDDED = "embedded defaults"
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_MTA_NAME = 32
TLS_POLICIES = ("none", "opportunistic", "required")
X400_MODES = ("1988", "x410")  # X.411 ub-mta-name-length


class ConfigError(ValueError):
    """A configuration problem: `path` is the file, `key` the dotted key ("" for the whole file)."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        # All three in args, so that the exception pickles and compares by value in tests.
        super().__init__(path, key, reason)
        self.path = path
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        if not self.key:
            return f"{self.path}: {self.reason}"
        return f"{self.path}: {self.key}: {self.reason}"


# Every section is frozen, and forbids unknown fields so that a misspelt key is an error.


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[server]: who this MTA is and where it keeps its database."""

    hostname: str = "localhost"
    data_dir: str = "./waypost-data"


class LogConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[log]: how much to log and where the JSON-lines event log goes."""

    level: str = "info"
    json_file: str = ""


class StoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[store]: the MTA database."""

    path: str = ""
    lease_seconds: float = 300.0
    max_batch: int = 1000


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[queue]: scheduling, back-off and concurrency of the queue manager (Postfix's knobs)."""

    poll_interval: float = 1.0
    batch_size: int = 256
    min_backoff: float = 300.0
    max_backoff: float = 4000.0
    max_lifetime: float = 432000.0
    delivery_concurrency: int = 20
    destination_concurrency: int = 10


class LocalConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[local]: which recipients are delivered here, and where."""

    domains: tuple[str, ...] = ("localhost",)
    oraddresses: tuple[str, ...] = ()
    maildir: str = "maildir"
    mailboxes: tuple[str, ...] = ()
    x400_store: str = "x400store"
    x400_mailboxes: tuple[str, ...] = ()


def _addresses(listen: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple(parse_address(text) for text in listen)


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[smtp]: the SMTP server — where it listens, what it accepts, from whom it relays."""

    listen: tuple[str, ...] = ("127.0.0.1:2525",)
    max_message_size: int = 35 * 1024 * 1024
    max_recipients: int = 1000
    max_errors: int = 20
    max_commands_before_transaction: int = 100
    max_connections: int = 1000
    max_connections_per_client: int = 50
    idle_timeout: float = 300.0
    data_timeout: float = 600.0
    max_hops: int = 50
    relay_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    tls_cert: str = ""
    tls_key: str = ""
    auth_users: str = ""
    min_free_space: int = 100 * 1024 * 1024

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """`listen` as (host, port) pairs; valid in a loaded Config."""
        return _addresses(self.listen)


class SmtpClientConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[smtp_client]: how mail is sent to SMTP next hops."""

    tls: str = "opportunistic"
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    data_timeout: float = 600.0
    max_messages_per_connection: int = 100
    connection_cache_time: float = 5.0


class X400PeerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[x400.peer]]: an adjacent MTA and its connector parameters (Exchange's X.400
    connector: the defaults are Exchange 5.5's)."""

    name: str
    address: str
    mode: str = "1988"
    our_name: str = ""
    our_password: str = ""
    peer_password: str = ""
    t_selector: str = ""
    s_selector: str = ""
    p_selector: str = ""
    checkpoint_size: int = 30
    window_size: int = 5
    recovery_timeout: float = 60.0
    association_lifetime: float = 300.0
    disconnect_timeout: float = 120.0
    max_open_retries: int = 144
    max_transfer_retries: int = 2
    open_interval: float = 600.0
    transfer_interval: float = 120.0
    threshold: int = 50
    max_associations: int = 4
    connect_timeout: float = 30.0
    answer_timeout: float = 120.0
    two_way_alternate: bool = True

    def __repr__(self) -> str:  # the passwords stay out of logs and tracebacks
        return f"X400PeerConfig(name={self.name!r}, address={self.address!r}, mode={self.mode!r})"


class X400Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[x400]: the P1 listener and the MTA name this MTA binds with."""

    listen: tuple[str, ...] = ("127.0.0.1:1102",)
    mta_name: str = "WAYPOST"
    # The global domain identifier this MTA writes in trace information and MTS identifiers.
    global_domain: str = "/C=ZZ/ADMD= /PRMD=WAYPOST/"
    bind_timeout: float = 60.0
    idle_timeout: float = 300.0
    max_connections: int = 1000
    max_connections_per_client: int = 100
    peer: tuple[X400PeerConfig, ...] = ()

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """`listen` as (host, port) pairs; valid in a loaded Config."""
        return _addresses(self.listen)


class RouteConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[route]] entry; waypost.routing gives `match` and `next_hop` their meaning."""

    match: str
    next_hop: str


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The whole configuration; `source` is the file it came from, or EMBEDDED.

    `Config()` holds the defaults as written; a loaded Config has absolute paths
    (`store.path` filled in) and lower-cased `log.level` and `local.domains`.
    """

    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    store: StoreConfig = StoreConfig()
    queue: QueueConfig = QueueConfig()
    local: LocalConfig = LocalConfig()
    smtp: SmtpConfig = SmtpConfig()
    smtp_client: SmtpClientConfig = SmtpClientConfig()
    x400: X400Config = X400Config()
    route: tuple[RouteConfig, ...] = ()
    source: str = EMBEDDED


# The top-level keys a file may have: every field of Config but `source`, which is ours.
SECTIONS: dict[str, Any] = {
    f.name: f.type for f in msgspec.structs.fields(Config) if f.name != "source"
}
# The struct a section's tables convert into: [[route]] is an array of RouteConfig.
_SECTION_STRUCTS: dict[str, type[msgspec.Struct]] = {
    name: (typing.get_args(kind) or (kind,))[0] for name, kind in SECTIONS.items()
}


# --- addresses and names -------------------------------------------------------------------

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def is_domain_name(name: str) -> bool:
    """A host or mail domain name in its ASCII (A-label) form, any case."""
    if not name or len(name) > 253:
        return False
    labels = name.lower().split(".")
    # An all-numeric last label is a mistyped IP address, never a name (RFC 3696 §2).
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` or `[ipv6]:port` → (host, port); ValueError says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: an IPv6 address goes in brackets, as in [::1]:2525")
    else:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not is_domain_name(host):
                raise ValueError(
                    f"{text!r}: {host!r} is neither an IP address nor a host name"
                ) from None
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not (digits and 1 <= int(port_text) <= 65535):
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


# --- loading -------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a configuration file, or the embedded defaults when `path` is None.

    Raises the first ConfigError found; `check_config_file` returns them all.
    """
    config, errors = _load(path)
    if errors:
        raise errors[0]
    assert config is not None
    return config


def check_config_file(path: str | os.PathLike[str]) -> list[ConfigError]:
    """Every problem that can be found in the file; [] when it loads."""
    return _load(path)[1]


def build_routing_table(config: Config) -> RoutingTable:
    """The routing table of a Config; a bad entry is a ConfigError naming `route[N].field`."""
    # Imported here: routing is a layer above config, and may itself import it.
    from waypost.routing import RouteEntry, RouteError, RoutingTable  # noqa: PLC0415

    try:
        return RoutingTable(
            [RouteEntry(match=r.match, next_hop=r.next_hop) for r in config.route],
            local_domains=config.local.domains,
            local_oraddresses=config.local.oraddresses,
            x400_peers=[peer.name for peer in config.x400.peer],
        )
    except RouteError as exc:
        raise ConfigError(config.source, exc.key, exc.reason) from None


def selector_bytes(text: str) -> bytes:
    """A T/S/P selector as written in the configuration: text, or `hex:` and hex digits."""
    if text.startswith("hex:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError:
            raise ValueError(f"{text!r}: after 'hex:' come pairs of hex digits") from None
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{text!r}: a selector is ASCII text, or hex:…") from None


def _routing_errors(config: Config) -> list[ConfigError]:
    """Every bad routing entry, though the table itself stops at the first.

    Each entry is tried alone (its key then says `[0]`, given back its own index),
    then all together for what only the whole shows, such as a duplicate.
    """
    replace = msgspec.structs.replace
    local = config.local
    trials: list[tuple[int, Config]] = []
    for i, domain in enumerate(local.domains):
        trials.append((i, replace(config, route=(), local=LocalConfig(domains=(domain,)))))
    for i, prefix in enumerate(local.oraddresses):
        only = LocalConfig(domains=(), oraddresses=(prefix,))
        trials.append((i, replace(config, route=(), local=only)))
    for i, route in enumerate(config.route):
        trials.append((i, replace(config, route=(route,), local=LocalConfig(domains=()))))
    errors: dict[str, ConfigError] = {}
    for index, one in trials:
        try:
            build_routing_table(one)
        except ConfigError as exc:
            key = exc.key.replace("[0]", f"[{index}]", 1)
            errors.setdefault(key, ConfigError(config.source, key, exc.reason))
    try:
        build_routing_table(config)
    except ConfigError as exc:
        errors.setdefault(exc.key, exc)
    return list(errors.values())


def _load(path: str | os.PathLike[str] | None) -> tuple[Config | None, list[ConfigError]]:
    if path is None:
        return _build({}, source=EMBEDDED, base=os.getcwd())
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        return None, [ConfigError(source, "", f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return None, [ConfigError(source, "", f"not UTF-8 text: byte {exc.start}")]
    except RecursionError:
        return None, [ConfigError(source, "", "TOML nested too deeply")]
    except tomllib.TOMLDecodeError as exc:
        return None, [_syntax_error(source, str(exc))]
    except ValueError as exc:
        # tomllib lets int()'s own limit through, for an integer of over 4300 digits.
        return None, [ConfigError(source, "", f"TOML value not usable: {exc}")]
    return _build(data, source=source, base=os.path.dirname(os.path.abspath(source)))


def _syntax_error(source: str, message: str) -> ConfigError:
    # Python 3.11's TOMLDecodeError has the position only in its text.
    found = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", message)
    if found is None:
        return ConfigError(source, "", f"TOML syntax error: {message}")
    reason, where = found.groups()
    return ConfigError(source, where, f"TOML syntax error: {reason}")


def _build(
    data: Mapping[str, Any], *, source: str, base: str
) -> tuple[Config | None, list[ConfigError]]:
    errors: list[ConfigError] = []
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in SECTIONS:
            what = "section" if isinstance(value, dict) else "key"
            errors.append(ConfigError(source, name, _unknown(what, name, SECTIONS)))
    # Each section on its own, so that one bad section does not hide problems in the others.
    for name, kind in SECTIONS.items():
        if name not in data:
            continue
        if name == "route" and isinstance(data[name], dict):
            errors.append(
                ConfigError(source, "route", "routes are an array of tables: write [[route]]")
            )
            continue
        try:
            sections[name] = msgspec.convert(data[name], kind)
        except msgspec.ValidationError as exc:
            errors.append(_type_error(source, name, str(exc)))
    # A section that did not convert takes its defaults, which are in range: the
    # other sections' values are checked all the same.
    config = Config(**sections, source=source)
    errors += [ConfigError(source, key, reason) for key, reason in _check_values(config)]
    # The routing table validates the routes and the local domains and prefixes again,
    # in its own terms; a key already reported above is not reported twice.
    reported = {error.key for error in errors}
    errors += [error for error in _routing_errors(config) if error.key not in reported]
    if errors:
        return None, errors
    return _normalise(config, base), []


_TYPE_NAMES = {
    "object": "a table",
    "array": "an array",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "nothing",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}


def _type_error(source: str, section: str, message: str) -> ConfigError:
    text, _, where = message.partition(" - at `")
    # msgspec's path is relative to the section converted: `$`, `$.key`, `$[2].key`.
    key = section + where.rstrip("`")[1:]
    if found := re.fullmatch(r"Object contains unknown field `(.*)`", text):
        field = found.group(1)
        struct = _SECTION_STRUCTS[section]
        known = [f.name for f in msgspec.structs.fields(struct)]
        return ConfigError(source, f"{key}.{field}", _unknown("key", field, known))
    if found := re.fullmatch(r"Object missing required field `(.*)`", text):
        return ConfigError(source, f"{key}.{found.group(1)}", "required key is missing")
    if found := re.fullmatch(r"Expected `(.*)`, got `(.*)`", text):
        expected, got = (_TYPE_NAMES.get(t, t) for t in found.groups())
        return ConfigError(source, key, f"expected {expected}, got {got}")
    return ConfigError(source, key, text[:1].lower() + text[1:])


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what}; did you mean {close[0]!r}?" if close else f"unknown {what}"


# --- values beyond their types -------------------------------------------------------------


def _check_values(config: Config) -> Iterator[tuple[str, str]]:
    """(key, reason) for every value out of range."""
    server, store, queue, local = config.server, config.store, config.queue, config.local
    if not is_domain_name(server.hostname):
        yield "server.hostname", f"{server.hostname!r} is not a valid host name"
    if not server.data_dir:
        yield "server.data_dir", "must not be empty"

    if config.log.level.lower() not in LOG_LEVELS:
        reason = f"must be one of {', '.join(LOG_LEVELS)}"
        close = difflib.get_close_matches(config.log.level.lower(), LOG_LEVELS, n=1)
        yield "log.level", reason + (f"; did you mean {close[0]!r}?" if close else "")

    yield from _positive("store.lease_seconds", store.lease_seconds)
    yield from _within("store.max_batch", store.max_batch, 1, 100_000)

    yield from _positive("queue.poll_interval", queue.poll_interval)
    yield from _within("queue.batch_size", queue.batch_size, 1, 100_000)
    yield from _positive("queue.min_backoff", queue.min_backoff)
    yield from _positive("queue.max_backoff", queue.max_backoff)
    if queue.min_backoff > queue.max_backoff:
        yield (
            "queue.min_backoff",
            (f"{queue.min_backoff:g} is more than queue.max_backoff ({queue.max_backoff:g})"),
        )
    yield from _positive("queue.max_lifetime", queue.max_lifetime)
    yield from _within("queue.delivery_concurrency", queue.delivery_concurrency, 1, 10_000)
    yield from _within("queue.destination_concurrency", queue.destination_concurrency, 1, 10_000)

    for i, domain in enumerate(local.domains):
        try:
            parse_domain(domain)
        except AddressError as exc:
            yield f"local.domains[{i}]", f"{domain!r} is not a valid domain name: {exc}"
    for i, prefix in enumerate(local.oraddresses):
        if not prefix.strip():
            yield f"local.oraddresses[{i}]", "must not be empty"
    if not local.maildir:
        yield "local.maildir", "must not be empty"
    if not local.x400_store:
        yield "local.x400_store", "must not be empty"
    for i, mailbox in enumerate(local.mailboxes):
        # Each becomes a directory name under the Maildir root: nothing may climb out of it.
        if not mailbox or mailbox.startswith(".") or "/" in mailbox or "\0" in mailbox:
            yield (
                f"local.mailboxes[{i}]",
                (f"{mailbox!r} is not a usable local part (empty, starts with '.', or has '/')"),
            )

    for i, oraddress in enumerate(local.x400_mailboxes):
        try:
            parse_oraddress(oraddress)
        except AddressError as exc:
            yield f"local.x400_mailboxes[{i}]", f"{oraddress!r} is not an O/R address: {exc}"

    smtp = config.smtp
    yield from _within("smtp.max_message_size", smtp.max_message_size, 1024, 2**40)
    yield from _within("smtp.max_recipients", smtp.max_recipients, 1, 1_000_000)
    yield from _within("smtp.max_errors", smtp.max_errors, 1, 100_000)
    yield from _within(
        "smtp.max_commands_before_transaction", smtp.max_commands_before_transaction, 1, 100_000
    )
    yield from _within("smtp.max_connections", smtp.max_connections, 1, 1_000_000)
    yield from _within(
        "smtp.max_connections_per_client", smtp.max_connections_per_client, 1, 1_000_000
    )
    yield from _positive("smtp.idle_timeout", smtp.idle_timeout)
    yield from _positive("smtp.data_timeout", smtp.data_timeout)
    yield from _within("smtp.max_hops", smtp.max_hops, 1, 1000)
    yield from _within("smtp.min_free_space", smtp.min_free_space, 0, 2**50)
    for i, network in enumerate(smtp.relay_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            yield f"smtp.relay_networks[{i}]", str(exc)
    if bool(smtp.tls_cert) != bool(smtp.tls_key):
        yield "smtp.tls_cert", "tls_cert and tls_key go together: give both or neither"

    client = config.smtp_client
    if client.tls not in TLS_POLICIES:
        yield "smtp_client.tls", f"must be one of {', '.join(TLS_POLICIES)}, not {client.tls!r}"
    for key in ("connect_timeout", "command_timeout", "data_timeout", "connection_cache_time"):
        yield from _positive(f"smtp_client.{key}", getattr(client, key))
    yield from _within(
        "smtp_client.max_messages_per_connection", client.max_messages_per_connection, 1, 100_000
    )

    for section in ("smtp", "x400"):
        listen: tuple[str, ...] = getattr(config, section).listen
        for i, text in enumerate(listen):
            try:
                parse_address(text)
            except ValueError as exc:
                yield f"{section}.listen[{i}]", str(exc)
    name = config.x400.mta_name
    if not 1 <= len(name) <= MAX_MTA_NAME or not all(" " <= c <= "~" for c in name):
        yield "x400.mta_name", f"must be 1 to {MAX_MTA_NAME} printable ASCII characters"
    yield from _global_domain(config.x400.global_domain)
    for field in ("bind_timeout", "idle_timeout"):
        yield from _positive(f"x400.{field}", getattr(config.x400, field))
    yield from _within("x400.max_connections", config.x400.max_connections, 1, 100_000)
    yield from _within(
        "x400.max_connections_per_client", config.x400.max_connections_per_client, 1, 100_000
    )

    seen: set[str] = set()
    for i, peer in enumerate(config.x400.peer):
        key = f"x400.peer[{i}]"
        if not 1 <= len(peer.name) <= MAX_MTA_NAME or not all("!" <= c <= "~" for c in peer.name):
            yield (
                f"{key}.name",
                f"must be 1 to {MAX_MTA_NAME} printable ASCII characters, no spaces",
            )
        elif peer.name in seen:
            yield f"{key}.name", f"{peer.name!r} is configured twice"
        seen.add(peer.name)
        try:
            parse_address(peer.address)
        except ValueError as exc:
            yield f"{key}.address", str(exc)
        if peer.mode not in X400_MODES:
            yield f"{key}.mode", f"must be one of {', '.join(X400_MODES)}, not {peer.mode!r}"
        if len(peer.our_name) > MAX_MTA_NAME:
            yield f"{key}.our_name", f"at most {MAX_MTA_NAME} characters"
        for field in ("t_selector", "s_selector", "p_selector"):
            try:
                if len(selector_bytes(getattr(peer, field))) > 32:
                    yield f"{key}.{field}", "at most 32 octets"
            except ValueError as exc:
                yield f"{key}.{field}", str(exc)
        yield from _within(f"{key}.checkpoint_size", peer.checkpoint_size, 0, 1024)
        yield from _within(f"{key}.window_size", peer.window_size, 1, 100)
        yield from _within(f"{key}.max_open_retries", peer.max_open_retries, 0, 100_000)
        yield from _within(f"{key}.max_transfer_retries", peer.max_transfer_retries, 0, 1000)
        yield from _within(f"{key}.threshold", peer.threshold, 1, 1_000_000)
        yield from _within(f"{key}.max_associations", peer.max_associations, 1, 64)
        for field in (
            "recovery_timeout",
            "association_lifetime",
            "disconnect_timeout",
            "open_interval",
            "transfer_interval",
            "connect_timeout",
            "answer_timeout",
        ):
            yield from _positive(f"{key}.{field}", getattr(peer, field))

    for i, route in enumerate(config.route):
        for field in ("match", "next_hop"):
            if not getattr(route, field).strip():
                yield f"route[{i}].{field}", "must not be empty"


def _global_domain(text: str) -> Iterator[tuple[str, str]]:
    try:
        gdi_parts(text)
    except AddressError as exc:
        yield "x400.global_domain", f"must be /C=../ADMD=../[PRMD=../]: {exc}"


def _positive(key: str, value: float) -> Iterator[tuple[str, str]]:
    if not (math.isfinite(value) and value > 0):
        yield key, f"must be a number of seconds greater than 0, not {value:g}"


def _within(key: str, value: int, low: int, high: int) -> Iterator[tuple[str, str]]:
    if not low <= value <= high:
        yield key, f"must be from {low} to {high}, not {value}"


def _normalise(config: Config, base: str) -> Config:
    """Lower-case what is case-insensitive; make paths absolute (data_dir against `base`)."""
    data_dir = os.path.abspath(os.path.join(base, config.server.data_dir))

    def under_data_dir(path: str) -> str:
        return os.path.abspath(os.path.join(data_dir, path))

    replace = msgspec.structs.replace
    return replace(
        config,
        server=replace(config.server, data_dir=data_dir),
        log=replace(
            config.log,
            level=config.log.level.lower(),
            json_file=under_data_dir(config.log.json_file) if config.log.json_file else "",
        ),
        store=replace(config.store, path=under_data_dir(config.store.path or "mta.db")),
        smtp=replace(
            config.smtp,
            tls_cert=under_data_dir(config.smtp.tls_cert) if config.smtp.tls_cert else "",
            tls_key=under_data_dir(config.smtp.tls_key) if config.smtp.tls_key else "",
            auth_users=under_data_dir(config.smtp.auth_users) if config.smtp.auth_users else "",
        ),
        local=replace(
            config.local,
            domains=tuple(parse_domain(d) for d in config.local.domains),
            maildir=under_data_dir(config.local.maildir),
            x400_store=under_data_dir(config.local.x400_store),
        ),
    )


# --- the defaults as TOML ------------------------------------------------------------------


def dump_defaults() -> str:
    """The embedded defaults as TOML text, paths as written (not yet resolved)."""
    lines = ["# Waypost configuration: the embedded defaults."]
    defaults = Config()
    for name in SECTIONS:
        if name == "route":
            continue
        lines += ["", f"[{name}]"]
        section = getattr(defaults, name)
        lines += [
            f"{f.name} = {toml_value(getattr(section, f.name))}"
            for f in msgspec.structs.fields(section)
            if (name, f.name) != ("x400", "peer")  # tables of their own, none by default
        ]
    lines += [
        "",
        "# No adjacent X.400 MTAs by default: [[x400.peer]] tables with name and address add them.",
        "# No routes by default: [[route]] tables with match and next_hop add them.",
    ]
    return "\n".join(lines) + "\n"


_ESCAPES: dict[str, str] = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_value(value: object) -> str:
    """A TOML literal for the values our sections hold."""
    match value:
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float():
            return repr(value)  # 300.0, 1e+16, inf and nan are all TOML
        case str():
            return '"' + "".join(_escape(char) for char in value) + '"'
        case tuple() | list():
            return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    # TOML forbids control characters and DEL in basic strings.
    return f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
