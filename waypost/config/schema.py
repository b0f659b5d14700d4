"""The configuration's schema: one frozen struct per section, each value's constraints beside it.

A constraint's `description` is the reason a user reads when a value breaks it
(see `waypost.config.convert`); checks no type can declare are in `checks`.
"""

from __future__ import annotations

import sys
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from waypost.config.values import parse_address

EMBEDDED = "embedded defaults"
MAX_MTA_NAME = 32  # X.411 ub-mta-name-length

LogLevel = Literal["debug", "info", "warning", "error"]
TlsPolicy = Literal["none", "opportunistic", "required"]
X400Mode = Literal["1988", "x410"]
SmtpMode = Literal["smtp", "submission", "submissions"]
LOG_LEVELS: tuple[str, ...] = typing.get_args(LogLevel)
TLS_POLICIES: tuple[str, ...] = typing.get_args(TlsPolicy)
X400_MODES: tuple[str, ...] = typing.get_args(X400Mode)
SMTP_MODES: tuple[str, ...] = typing.get_args(SmtpMode)

# The largest finite float as the upper bound refuses inf, and nan, which compares false.
Seconds = Annotated[
    float,
    Meta(gt=0, le=sys.float_info.max, description="must be a number of seconds greater than 0"),
]
# A path as written; "" leaves it to its default. (A NUL would make every system call fail.)
PathText = Annotated[
    str, Meta(pattern=r"\A[^\x00]*\Z", description="must not contain a NUL character")
]
MtaName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_MTA_NAME,
        pattern=r"\A[ -~]*\Z",
        description=f"must be 1 to {MAX_MTA_NAME} printable ASCII characters",
    ),
]
PeerName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_MTA_NAME,
        pattern=r"\A[!-~]*\Z",
        description=f"must be 1 to {MAX_MTA_NAME} printable ASCII characters, no spaces",
    ),
]


# Every section is frozen, and forbids unknown fields so that a misspelt key is an error.


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[server]: who this MTA is and where it keeps its database."""

    hostname: str = "localhost"
    data_dir: PathText = ""  # see default_data_dir


# The diagnostics-logging categories (waypost.events.Category), each with a level of its
# own: Exchange's none / minimum / medium / maximum, or a logging level. Maximum (debug)
# writes the protocol trace of the smtp and x400 categories.
CategoryName = Literal[
    "system",
    "config",
    "store",
    "check",
    "queue",
    "routing",
    "delivery",
    "interface",
    "smtp",
    "x400",
    "gateway",
    "security",
    "resource",
]
CategoryLevel = Literal["none", "minimum", "medium", "maximum", "debug", "info", "warning", "error"]
CATEGORY_NAMES: tuple[str, ...] = typing.get_args(CategoryName)
CATEGORY_LEVELS: tuple[str, ...] = typing.get_args(CategoryLevel)


class LogConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[log]: how much to log and where the JSON-lines event log goes; `categories` sets
    a category's level apart from `level`."""

    level: LogLevel = "info"
    json_file: PathText = ""
    categories: dict[CategoryName, CategoryLevel] = {}


class TrackingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[tracking]: the journal of every message's life, kept after it left the queue."""

    enabled: bool = True
    path: PathText = ""  # see config.load: <data_dir>/tracking.db
    retention: Seconds = 7 * 86400.0
    max_records: Annotated[int, Meta(ge=1000, le=10**10)] = 5_000_000


class MetricsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[metrics]: the Prometheus endpoint (`/metrics`); off unless enabled."""

    enabled: bool = False
    listen: str = "127.0.0.1:9465"
    # Next hops named in labels at most; the rest are counted under "other".
    max_next_hops: Annotated[int, Meta(ge=1, le=10_000)] = 100


class ConsoleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[console]: the web console; off unless enabled, on loopback by default."""

    enabled: bool = False
    listen: str = "127.0.0.1:8465"
    users: PathText = ""  # see config.load: <data_dir>/console-users
    session_timeout: Seconds = 8 * 3600.0


StoreBackend = Literal["sqlite", "postgresql"]


class StoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[store]: the MTA database: an SQLite file, or a PostgreSQL database that the nodes of
    a cluster share."""

    backend: StoreBackend = "sqlite"
    path: PathText = ""
    dsn: str = ""
    lease_seconds: Seconds = 300.0
    max_batch: Annotated[int, Meta(ge=1, le=100_000)] = 1000


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[cluster]: this node among those sharing a PostgreSQL MTA database."""

    node: str = ""  # the host's name when empty
    heartbeat_interval: Seconds = 5.0
    node_timeout: Seconds = 30.0


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[queue]: scheduling, back-off and concurrency of the queue manager (Postfix's knobs)."""

    poll_interval: Seconds = 1.0
    batch_size: Annotated[int, Meta(ge=1, le=100_000)] = 256
    min_backoff: Seconds = 300.0
    max_backoff: Seconds = 4000.0
    # How long a message may wait before it expires, by its priority (Exchange's MTA
    # defaults: 2, 7 and 10 days; EUR Doc 020 recommends 7 days for AMHS).
    max_lifetime: Seconds = 7 * 86400.0
    max_lifetime_urgent: Seconds = 2 * 86400.0
    max_lifetime_non_urgent: Seconds = 10 * 86400.0
    delivery_concurrency: Annotated[int, Meta(ge=1, le=10_000)] = 20
    destination_concurrency: Annotated[int, Meta(ge=1, le=10_000)] = 10
    # The share of delivery slots (in all, and per next hop) only urgent messages may use,
    # so that a backlog of others never makes one wait for a slot.
    urgent_share: Annotated[float, Meta(ge=0.0, le=0.5, description="must be from 0 to 0.5")] = 0.1


class LocalConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[local]: which recipients are delivered here, and where."""

    domains: tuple[str, ...] = ("localhost",)
    oraddresses: tuple[str, ...] = ()
    maildir: PathText = ""
    # Mailboxes of the local domains delivered by LMTP to a message store (an lmtp: next
    # hop) instead of into the Maildirs: what a cluster's nodes share.
    lmtp: str = ""
    mailboxes: tuple[str, ...] = ()
    x400_store: PathText = ""
    x400_mailboxes: tuple[str, ...] = ()
    # Local O/R addresses (or prefixes) whose X.400 mail is converted to MIME (RFC 2156,
    # RFC 2157) and delivered to a Maildir mailbox: {"/C=…/S=Smith/" = "smith"}.
    mime_mailboxes: dict[str, str] = {}


def _addresses(listen: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple(parse_address(text) for text in listen)


Connections = Annotated[int, Meta(ge=1, le=1_000_000)]
MessageSize = Annotated[int, Meta(ge=1024, le=2**40)]


class SmtpListenerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[smtp.listener]]: an address and the service it runs (Postfix's master.cf lines).

    `mode`: "smtp" has [smtp]'s policy; "submission" (RFC 6409, port 587) offers STARTTLS
    and requires TLS then AUTH before MAIL, relaying for authenticated users only;
    "submissions" is the same behind implicit TLS (RFC 8314, port 465). A value left out
    is [smtp]'s.
    """

    address: str
    mode: SmtpMode = "submission"
    max_message_size: MessageSize | None = None
    max_connections: Connections | None = None
    max_connections_per_client: Connections | None = None
    max_connections_per_network: Connections | None = None
    idle_timeout: Seconds | None = None
    data_timeout: Seconds | None = None


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[smtp]: the SMTP server — where it listens, what it accepts, from whom it relays."""

    listen: tuple[str, ...] = ("127.0.0.1:2525",)
    max_message_size: MessageSize = 35 * 1024 * 1024
    max_recipients: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    max_errors: Annotated[int, Meta(ge=1, le=100_000)] = 20
    max_commands_before_transaction: Annotated[int, Meta(ge=1, le=100_000)] = 100
    max_connections: Connections = 1000
    max_connections_per_client: Connections = 50
    # A /24 (IPv4) or /64 (IPv6): one network cannot take every slot.
    max_connections_per_network: Connections = 200
    idle_timeout: Seconds = 300.0
    data_timeout: Seconds = 600.0
    data_deadline: Seconds = 3600.0
    min_data_rate: Annotated[int, Meta(ge=0, le=2**40)] = 1024
    max_hops: Annotated[int, Meta(ge=1, le=1000)] = 50
    relay_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    tls_cert: PathText = ""
    tls_key: PathText = ""
    auth_users: PathText = ""
    min_free_space: Annotated[int, Meta(ge=0, le=2**50)] = 100 * 1024 * 1024
    listener: tuple[SmtpListenerConfig, ...] = ()

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """`listen` as (host, port) pairs; valid in a loaded Config."""
        return _addresses(self.listen)


class SmtpClientConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[smtp_client]: how mail is sent to SMTP next hops."""

    tls: TlsPolicy = "opportunistic"
    connect_timeout: Seconds = 30.0
    command_timeout: Seconds = 300.0
    data_timeout: Seconds = 600.0
    max_messages_per_connection: Annotated[int, Meta(ge=1, le=100_000)] = 100
    connection_cache_time: Seconds = 5.0


class X400PeerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[x400.peer]]: an adjacent MTA and its connector parameters (Exchange's X.400
    connector: the defaults are Exchange 5.5's)."""

    name: PeerName
    address: str
    mode: X400Mode = "1988"
    our_name: Annotated[
        str, Meta(max_length=MAX_MTA_NAME, description=f"at most {MAX_MTA_NAME} characters")
    ] = ""
    our_password: str = ""
    peer_password: str = ""
    t_selector: str = ""
    s_selector: str = ""
    p_selector: str = ""
    checkpoint_size: Annotated[int, Meta(ge=0, le=1024)] = 30
    window_size: Annotated[int, Meta(ge=1, le=100)] = 5
    recovery_timeout: Seconds = 60.0
    association_lifetime: Seconds = 300.0
    disconnect_timeout: Seconds = 120.0
    max_open_retries: Annotated[int, Meta(ge=0, le=100_000)] = 144
    max_transfer_retries: Annotated[int, Meta(ge=0, le=1000)] = 2
    open_interval: Seconds = 600.0
    transfer_interval: Seconds = 120.0
    threshold: Annotated[int, Meta(ge=1, le=1_000_000)] = 50
    max_associations: Annotated[int, Meta(ge=1, le=64)] = 4
    # Associations kept open at all times (reopened when lost), so that an urgent message
    # never waits for one to open: an AMHS backbone's permanent associations.
    permanent_associations: Annotated[int, Meta(ge=0, le=64)] = 0
    connect_timeout: Seconds = 30.0
    answer_timeout: Seconds = 120.0
    two_way_alternate: bool = True

    def __repr__(self) -> str:  # the passwords stay out of logs and tracebacks
        return f"X400PeerConfig(name={self.name!r}, address={self.address!r}, mode={self.mode!r})"


class X400Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[x400]: the P1 listener and the MTA name this MTA binds with."""

    listen: tuple[str, ...] = ("127.0.0.1:1102",)
    mta_name: MtaName = "WAYPOST"
    # The global domain identifier this MTA writes in trace information and MTS identifiers.
    global_domain: str = "/C=ZZ/ADMD= /PRMD=WAYPOST/"
    bind_timeout: Seconds = 60.0
    idle_timeout: Seconds = 300.0
    max_connections: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    max_connections_per_client: Annotated[int, Meta(ge=1, le=100_000)] = 100
    peer: tuple[X400PeerConfig, ...] = ()

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """`listen` as (host, port) pairs; valid in a loaded Config."""
        return _addresses(self.listen)


MappingDirection = Literal["both", "to-x400", "to-rfc822"]
MAPPING_DIRECTIONS: tuple[str, ...] = typing.get_args(MappingDirection)


class MixerMappingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[mixer.mapping]]: an O/R address prefix and the mail domain it maps to (an
    RFC 2156 §4 table entry). `direction` puts it in one table only: "to-x400" maps the
    domain to the prefix (RFC 2156 table 1), "to-rfc822" the prefix to the domain (table 2)."""

    oraddress: str
    domain: str
    direction: MappingDirection = "both"


class MixerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[mixer]: the RFC 2156 gateway between X.400 and Internet mail.

    `domain` and `oraddress` are the gateway's own addresses: mail to `"/O/R address/"@domain`
    and O/R addresses under `oraddress` (with an RFC-822 domain-defined attribute) route to
    the gateway by themselves; other addresses reach it by a route to `gateway:mixer`.
    """

    enabled: bool = False
    domain: str = ""
    oraddress: str = ""
    mapping: tuple[MixerMappingConfig, ...] = ()
    # A message whose every recipient crosses is converted before it is first stored
    # (one durable copy); false stores every message as it came and converts it queued.
    convert_on_arrival: bool = True
    # RFC 2163: look mappings up in DNS (PX records) when no table entry matches.
    dns: bool = False
    dns_x400_root: str = ""
    dns_nameservers: tuple[str, ...] = ()


# The end of the ATS message header in an IPM's text (ICAO Doc 9880 Part II): a blank line
# of CRLF, one of LF, or none.
EndOfHeading = Literal["crlf", "lf", "none"]
# How AFTN messages are framed on a TCP connection (docs/amhs.md): IA-5 (SOH … ETX) or the
# ITA-2 teleprinter form in ASCII (ZCZC … NNNN).
AftnFraming = Literal["ia5", "ita2"]
AftnAddress = Annotated[
    str, Meta(pattern=r"\A([A-Z]{8})?\Z", description="must be an AFTN address: eight letters A-Z")
]


class AftnPeerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One [[amhs.peer]]: an AFTN station (a switch or a terminal) Waypost sends AFTN messages
    to over TCP, the next hop `aftn:NAME`."""

    name: PeerName
    address: str
    framing: AftnFraming = "ia5"
    # The channel designator of the transmission identifications Waypost sends it (three
    # letters, Annex 10 Volume II §4.4.15.1.1), numbered 001 to 999 and round again.
    channel: Annotated[
        str, Meta(pattern=r"\A[A-Z]{3}\Z", description="must be three letters A-Z")
    ] = "WPT"
    connect_timeout: Seconds = 30.0


class AmhsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[amhs]: the ATS Message Handling Service — the register of AMHS management domains
    that maps AFTN addresses to O/R addresses, the ATS message header's form, and the
    AFTN/AMHS gateway: its AFTN address, its AFTN listeners and the AFTN stations it sends
    to."""

    enabled: bool = False
    # The register of AMHS management domains: a CSV or LDIF file (docs/amhs.md).
    register: PathText = ""
    end_of_heading: EndOfHeading = "crlf"
    # The management domains (PRMD names) whose users take the Extended ATS Message
    # Service: a message converted from AFTN whose every recipient is in one of them is
    # written in the extended form, any other in the basic form.
    extended_domains: tuple[str, ...] = ()
    # The gateway's own AFTN address: the originator of its AFTN service messages.
    aftn_address: AftnAddress = ""
    listen: tuple[str, ...] = ()
    framing: AftnFraming = "ia5"
    peer: tuple[AftnPeerConfig, ...] = ()
    # The longest AFTN text an AMHS message may convert to (Annex 10 Volume II: 1800
    # characters); a longer one is refused with a non-delivery report.
    max_text_length: Annotated[int, Meta(ge=100, le=100_000)] = 1800
    # Every ATS message transferred is recorded whole for this long (ICAO Annex 10 Volume II
    # §3.5.1.5 asks 30 days at the least).
    record_retention: Seconds = 30 * 86400.0

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

    `Config()` holds the defaults as written; a loaded Config has absolute paths (the
    data directory and the places in it filled in) and lower-cased `log.level` and
    `local.domains`.
    """

    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    store: StoreConfig = StoreConfig()
    cluster: ClusterConfig = ClusterConfig()
    queue: QueueConfig = QueueConfig()
    local: LocalConfig = LocalConfig()
    smtp: SmtpConfig = SmtpConfig()
    smtp_client: SmtpClientConfig = SmtpClientConfig()
    x400: X400Config = X400Config()
    mixer: MixerConfig = MixerConfig()
    amhs: AmhsConfig = AmhsConfig()
    tracking: TrackingConfig = TrackingConfig()
    metrics: MetricsConfig = MetricsConfig()
    console: ConsoleConfig = ConsoleConfig()
    route: tuple[RouteConfig, ...] = ()
    source: str = EMBEDDED


# The top-level keys a file may have: every field of Config but `source`, which is ours.
SECTIONS: dict[str, Any] = {
    f.name: f.type for f in msgspec.structs.fields(Config) if f.name != "source"
}
