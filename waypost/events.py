"""The catalogue of numbered events and how they are emitted through `logging`.

Every event an operator may see has an id, a severity, a category, a message
template and what to do about it; `waypost events` prints this catalogue.
"""

from __future__ import annotations

import enum
import json
import logging
import string
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO


class Severity(enum.IntEnum):
    """Event severities, ordered and mapped onto `logging` levels."""

    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR
    CRITICAL = logging.CRITICAL


class Category(enum.StrEnum):
    """Diagnostics-logging categories, as an Exchange administrator knows them."""

    SYSTEM = "system"
    CONFIG = "config"
    STORE = "store"
    CHECK = "check"
    QUEUE = "queue"
    ROUTING = "routing"
    DELIVERY = "delivery"
    INTERFACE = "interface"
    SMTP = "smtp"
    X400 = "x400"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventDefinition:
    """One entry of the catalogue."""

    id: int
    name: str
    severity: Severity
    category: Category
    template: str
    action: str

    def fields(self) -> list[str]:
        """The names the template needs, in order of appearance."""
        return [f for _, f, _, _ in string.Formatter().parse(self.template) if f]

    def render(self, values: Mapping[str, object]) -> str:
        """The message text; a missing field shows as `<name?>` rather than failing."""
        return self.template.format_map(_Lenient(values))


class _Lenient(dict[str, object]):
    """Field values for a template: a missing one shows as `<name?>`, and control characters
    are escaped, so that text from a peer (a user name, a reply) can never forge a log line."""

    def __missing__(self, key: str) -> str:
        return f"<{key}?>"

    def __getitem__(self, key: str) -> object:
        value = super().__getitem__(key)
        if isinstance(value, str) and not value.isprintable():
            return value.translate(_ESCAPES)
        return value


# C0 controls, DEL, C1 controls and the Unicode line separators, written as escapes.
_ESCAPES = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
}


CATALOGUE: dict[int, EventDefinition] = {}


def _define(
    id: int, name: str, severity: Severity, category: Category, template: str, action: str
) -> EventDefinition:
    if id in CATALOGUE:
        raise ValueError(f"event id {id} defined twice")
    event = EventDefinition(
        id=id, name=name, severity=severity, category=category, template=template, action=action
    )
    CATALOGUE[id] = event
    return event


S, C = Severity, Category

# 1000-1099 system
SERVICE_STARTED = _define(
    1000,
    "service-started",
    S.INFO,
    C.SYSTEM,
    "Waypost {version} started; data directory {data_dir}",
    "None.",
)
SERVICE_STOPPED = _define(
    1001,
    "service-stopped",
    S.INFO,
    C.SYSTEM,
    "Waypost stopped cleanly",
    "None.",
)
UNCLEAN_STOP_DETECTED = _define(
    1002,
    "unclean-stop-detected",
    S.WARNING,
    C.SYSTEM,
    "The previous run (pid {pid}) did not stop cleanly; checking the MTA database",
    "None: the check runs by itself. Find out why the process stopped (kill, crash, power).",
)
UNEXPECTED_ERROR = _define(
    1003,
    "unexpected-error",
    S.ERROR,
    C.SYSTEM,
    "Unexpected error in {component}: {error}; the component carries on",
    "Report this as a bug with the log lines around it.",
)
ALREADY_RUNNING = _define(
    1004,
    "already-running",
    S.ERROR,
    C.SYSTEM,
    "Another Waypost (pid {pid}) is already using data directory {data_dir}",
    "Stop the other instance, or give this one another data directory.",
)
DATA_DIR_UNUSABLE = _define(
    1005,
    "data-dir-unusable",
    S.CRITICAL,
    C.SYSTEM,
    "Data directory {path} cannot be used: {reason}; Waypost does not start",
    "Make server.data_dir a directory the Waypost user may write in, on a writable file "
    "system (or name another); `waypost config check` checks it without starting.",
)

# 1100-1199 configuration
CONFIG_INVALID = _define(
    1100,
    "config-invalid",
    S.ERROR,
    C.CONFIG,
    "Configuration {path}: {key}: {reason}",
    "Correct the named key; `waypost config check FILE` checks a file without starting.",
)
CONFIG_LOADED = _define(
    1101,
    "config-loaded",
    S.INFO,
    C.CONFIG,
    "Configuration loaded from {source}",
    "None.",
)

# 1200-1299 store (the MTA database)
STORE_OPENED = _define(
    1200,
    "store-opened",
    S.INFO,
    C.STORE,
    "MTA database {path} opened ({messages} messages, {recipients} recipients queued)",
    "None.",
)
OBJECT_QUARANTINED = _define(
    1201,
    "object-quarantined",
    S.ERROR,
    C.STORE,
    "Bad {kind} {object_id} moved to quarantine: {reason}",
    "The MTA carries on. Inspect the object with `waypost queue show`; "
    "run `waypost check -v` to look for others.",
)
STORE_WRITE_FAILED = _define(
    1202,
    "store-write-failed",
    S.ERROR,
    C.STORE,
    "Writing to the MTA database failed: {error}; {count} operations answered with a "
    "temporary error",
    "Check free disk space and the file system; nothing acknowledged was lost.",
)
STORE_CORRUPT = _define(
    1203,
    "store-corrupt",
    S.CRITICAL,
    C.STORE,
    "MTA database {path} is damaged: {reason}",
    "Stop Waypost and follow the recovery procedure in docs/operations.md "
    "(`waypost check --repair`, or restore from the SQLite backup).",
)
LEASE_EXPIRED = _define(
    1204,
    "lease-expired",
    S.WARNING,
    C.STORE,
    "Recipient {recipient_id} of message {message_id} was leased by {owner} whose lease "
    "expired; it is queued again",
    "None: work held by a stopped worker comes back by itself.",
)
STORE_OPEN_FAILED = _define(
    1205,
    "store-open-failed",
    S.CRITICAL,
    C.STORE,
    "Cannot open the MTA database {path}: {reason}",
    "Check the data directory's path, permissions and free space.",
)

# 1300-1399 checker
CHECK_STARTED = _define(
    1300,
    "check-started",
    S.INFO,
    C.CHECK,
    "Checking MTA database {path}",
    "None.",
)
CHECK_FINISHED = _define(
    1301,
    "check-finished",
    S.INFO,
    C.CHECK,
    "Check of {path} finished: {objects} objects, {problems} problems, {repaired} quarantined",
    "If problems remain, run `waypost check --repair`.",
)
CHECK_PROBLEM = _define(
    1302,
    "check-problem",
    S.WARNING,
    C.CHECK,
    "{kind} {object_id}: {reason}",
    "Run `waypost check --repair` to move the object to quarantine.",
)
CHECK_REPAIRED = _define(
    1303,
    "check-repaired",
    S.WARNING,
    C.CHECK,
    "Repair of {path} committed in one transaction: problems repaired {repaired} "
    "(moved to quarantine {quarantined}, stale leases queued again {requeued}, "
    "schema repairs {schema})",
    "Inspect the quarantined objects with `waypost queue show`; find out what damaged them.",
)
CHECK_REPAIR_FAILED = _define(
    1304,
    "check-repair-failed",
    S.ERROR,
    C.CHECK,
    "Repair of {path} failed and was rolled back, nothing was changed: {error}",
    "Make sure Waypost is stopped, the file is writable and the disk has free space; "
    "then run `waypost check --repair` again.",
)

# 1400-1499 queue manager
RECIPIENT_DEFERRED = _define(
    1400,
    "recipient-deferred",
    S.INFO,
    C.QUEUE,
    "Message {message_id} to {recipient}: deferred until {next_attempt} (attempt {attempts}): "
    "{error}",
    "None if it is rare; many for one next hop suggest that hop is down.",
)
RECIPIENT_EXPIRED = _define(
    1401,
    "recipient-expired",
    S.WARNING,
    C.QUEUE,
    "Message {message_id} to {recipient} expired after {attempts} attempts via {next_hop}; "
    "a report is owed. Last error: {error}",
    "Find out why the next hop did not accept it.",
)
RECIPIENT_FAILED = _define(
    1402,
    "recipient-failed",
    S.WARNING,
    C.QUEUE,
    "Message {message_id} to {recipient} failed permanently: {error}",
    "None: a non-delivery report is owed to the originator.",
)
QUEUE_ADMIN = _define(
    1403,
    "queue-admin",
    S.INFO,
    C.QUEUE,
    "Operator {action} on {count} recipients of {target}",
    "None.",
)
RECIPIENT_REROUTED = _define(
    1406,
    "recipient-rerouted",
    S.INFO,
    C.ROUTING,
    "Message {message_id} to {recipient} re-routed by the operator: next hop {old} is now {new}",
    "None.",
)
QUEUE_STORE_UNAVAILABLE = _define(
    1405,
    "queue-store-unavailable",
    S.WARNING,
    C.QUEUE,
    "The queue manager could not {action} in the MTA database: {error}; the work stays "
    "queued and is tried again",
    "See the store's own event (1202) for the cause, usually a full disk; nothing is lost.",
)

# 1500-1599 delivery
DELIVERED = _define(
    1500,
    "delivered",
    S.INFO,
    C.DELIVERY,
    "Message {message_id} delivered to {recipient} via {next_hop}",
    "None.",
)
LOCAL_DELIVERY_FAILED = _define(
    1501,
    "local-delivery-failed",
    S.WARNING,
    C.DELIVERY,
    "Local delivery of message {message_id} to {recipient} failed: {error}",
    "Check the Maildir's path, permissions and free space.",
)

# 1600-1699 interface (listeners; the transports add theirs here)
ACCEPT_FAILED = _define(
    1600,
    "accept-failed",
    S.ERROR,
    C.INTERFACE,
    "accept() on {listener} failed: {error}; retrying in {delay}s",
    "Raise the file-descriptor limit or lower connection limits; the listener keeps serving.",
)
LISTEN_FAILED = _define(
    1601,
    "listen-failed",
    S.CRITICAL,
    C.INTERFACE,
    "Cannot listen on {address} ({listener}): {reason}; Waypost does not start",
    "Stop what holds the address (`ss -ltnp`), or change the listen key of that listener.",
)

# 1700-1799 SMTP
SMTP_ACCEPTED = _define(
    1700,
    "smtp-accepted",
    S.INFO,
    C.SMTP,
    "Message {message_id} ({mts_id}) from {originator} accepted from {client}: "
    "{recipients} recipients, {size} bytes",
    "None.",
)
SMTP_RECIPIENT_REFUSED = _define(
    1701,
    "smtp-recipient-refused",
    S.INFO,
    C.SMTP,
    "{client}: recipient {recipient} refused: {reply}",
    "None if rare; many from one client suggest address harvesting or a misconfigured relay.",
)
SMTP_CONNECTION_REFUSED = _define(
    1702,
    "smtp-connection-refused",
    S.WARNING,
    C.SMTP,
    "Connection from {client} refused: {reason}",
    "Raise smtp.max_connections or smtp.max_connections_per_client if legitimate "
    "clients hit the limit.",
)
SMTP_VIOLATION = _define(
    1703,
    "smtp-violation",
    S.WARNING,
    C.SMTP,
    "{client}: {reason}",
    "None: the session was answered or closed; look for a misbehaving or hostile client.",
)
SMTP_TIMEOUT = _define(
    1704,
    "smtp-timeout",
    S.INFO,
    C.SMTP,
    "{client}: idle for too long; session closed with 421",
    "None.",
)
SMTP_DISK_LOW = _define(
    1705,
    "smtp-disk-low",
    S.WARNING,
    C.SMTP,
    "Free space on the file system of {path} is under {minimum} bytes: new mail refused "
    "with 452 4.3.1",
    "Free disk space; accepted mail is safe and is still delivered.",
)
SMTP_LOOP = _define(
    1706,
    "smtp-loop",
    S.WARNING,
    C.SMTP,
    "{client}: message from {originator} has {hops} or more Received: fields (a mail "
    "loop); refused with 554 5.4.6",
    "Find the routing loop between this MTA and its neighbours.",
)
SMTP_STORE_FAILED = _define(
    1707,
    "smtp-store-failed",
    S.ERROR,
    C.SMTP,
    "{client}: message could not be stored ({error}); answered 451 4.3.0",
    "Check the MTA database's disk; the client will try again.",
)
SMTP_AUTH_FAILED = _define(
    1708,
    "smtp-auth-failed",
    S.WARNING,
    C.SMTP,
    "{client}: AUTH {mechanism} failed for user {username}",
    "None if rare; many suggest password guessing.",
)
SMTP_TLS_FAILED = _define(
    1709,
    "smtp-tls-failed",
    S.WARNING,
    C.SMTP,
    "{client}: TLS handshake failed: {error}",
    "Check smtp.tls_cert and smtp.tls_key if every client fails.",
)
SMTP_HOP_FAILED = _define(
    1710,
    "smtp-hop-failed",
    S.WARNING,
    C.SMTP,
    "Next hop {next_hop}: {host} could not be used: {error}",
    "None if it is brief: the next host is tried, then the recipients are deferred. "
    "Check the next hop if it persists.",
)
REPORT_QUEUED = _define(
    1711,
    "report-queued",
    S.INFO,
    C.QUEUE,
    "{kind} report on message {message_id} for {recipients} recipients queued as message "
    "{report_id} to {to}",
    "None.",
)
REPORT_UNDELIVERABLE = _define(
    1712,
    "report-undeliverable",
    S.WARNING,
    C.QUEUE,
    "{kind} report on message {message_id} cannot be sent to {to}: {reason}; dropped",
    "Add a route for the originator's domain if reports to it should be delivered.",
)

# 1800-1899 X.400 (P1 associations)
X400_ASSOCIATION_OPENED = _define(
    1800,
    "x400-association-opened",
    S.INFO,
    C.X400,
    "{direction} P1 association with {peer} ({address}) open in {mode} mode",
    "None.",
)
X400_BIND_REFUSED = _define(
    1801,
    "x400-bind-refused",
    S.WARNING,
    C.X400,
    "{client}: MTA bind as {mta_name} refused: {reason}",
    "Check the [[x400.peer]] entry (name, peer_password) if the peer is a known MTA; "
    "many refusals from one address suggest password guessing.",
)
X400_ASSOCIATION_ABORTED = _define(
    1802,
    "x400-association-aborted",
    S.WARNING,
    C.X400,
    "P1 association with {peer} aborted in the {layer} layer: {reason}",
    "None if rare: an unconfirmed transfer stays with the sender, which tries again. "
    "Check the peer's configuration and software if it repeats.",
)
X400_MESSAGE_RECEIVED = _define(
    1803,
    "x400-message-received",
    S.INFO,
    C.X400,
    "{peer}: {kind} {mts_id} for {recipients} recipients accepted as message {message_id}",
    "None.",
)
X400_STORE_FAILED = _define(
    1804,
    "x400-store-failed",
    S.ERROR,
    C.X400,
    "{peer}: message {mts_id} could not be stored ({error}); association aborted, "
    "the peer keeps the message",
    "Check the MTA database's disk; the peer will try again.",
)
X400_NO_ROUTE = _define(
    1805,
    "x400-no-route",
    S.WARNING,
    C.X400,
    "{peer}: message {mts_id}: no route for {recipient} ({reason}); the recipient fails and a "
    "non-delivery report is owed",
    "Add a route for the recipient's O/R address if it should be reachable.",
)
X400_TIMEOUT = _define(
    1807,
    "x400-timeout",
    S.INFO,
    C.X400,
    "P1 association with {peer} closed after {seconds} s without traffic",
    "None.",
)
X400_PEER_REFUSED = _define(
    1808,
    "x400-peer-refused",
    S.WARNING,
    C.X400,
    "Adjacent MTA {peer} refused our bind ({reason}); recipients deferred",
    "Check our_name and our_password of the [[x400.peer]] entry against the peer's "
    "configuration: the queue keeps retrying until it is fixed.",
)
X400_TRANSFER_FAILED = _define(
    1809,
    "x400-transfer-failed",
    S.WARNING,
    C.X400,
    "Adjacent MTA {peer}: {error}; recipients deferred",
    "None if it is brief; check the peer's address and state if it persists.",
)

X400_LOOP_DETECTED = _define(
    1820,
    "x400-loop-detected",
    S.WARNING,
    C.X400,
    "{peer}: {kind} {mts_id} has been through this domain ({domain}) before: {outcome}",
    "Check the routes of this MTA and of the adjacent MTAs for the recipients' O/R addresses.",
)
X400_CRITICAL_EXTENSION = _define(
    1821,
    "x400-critical-extension",
    S.WARNING,
    C.X400,
    "{peer}: {kind} {mts_id} carries extension {extension}, critical for {critical_for} and "
    "not supported: {outcome}",
    "None: X.411 requires this; the originator receives a non-delivery report.",
)
X400_REPORT_DISCARDED = _define(
    1822,
    "x400-report-discarded",
    S.WARNING,
    C.X400,
    "Report {mts_id} for {destination} discarded: {reason}",
    "Reports are never reported on; check the routes to the destination if it repeats.",
)

X400_TRANSFER_RECOVERED = _define(
    1823,
    "x400-transfer-recovered",
    S.INFO,
    C.X400,
    "{direction} transfer with {peer} resumed after checkpoint {serial} "
    "({octets} octets already across)",
    "None: the connection was lost mid-transfer and RTSE recovered it.",
)
X400_RECOVERY_REFUSED = _define(
    1824,
    "x400-recovery-refused",
    S.INFO,
    C.X400,
    "Recovery of an interrupted transfer refused ({peer}): {reason}; it starts again",
    "None: the whole message is transferred again.",
)

del S, C


def by_name(name: str) -> EventDefinition:
    """Look an event up by its name (for tests and tools)."""
    for event in CATALOGUE.values():
        if event.name == name:
            return event
    raise KeyError(name)


def catalogue() -> Iterator[EventDefinition]:
    """Every event, by id."""
    return iter(sorted(CATALOGUE.values(), key=lambda e: e.id))


_LOGGER = logging.getLogger("waypost")
# Looked up once: getChild takes the logging module's lock on every call.
_CATEGORY_LOGGERS = {c: _LOGGER.getChild(c.value) for c in Category}


def enabled(event: EventDefinition) -> bool:
    """Whether `emit` would log the event: lets a hot path skip gathering its fields."""
    return _CATEGORY_LOGGERS[event.category].isEnabledFor(event.severity)


def emit(event: EventDefinition, **fields: object) -> None:
    """Log one numbered event with its fields as a structured record."""
    logger = _CATEGORY_LOGGERS[event.category]
    if not logger.isEnabledFor(event.severity):
        return
    logger.log(
        event.severity,
        "%s",
        event.render(fields),
        extra={"waypost_event": event, "waypost_fields": fields},
    )


def _record_event(record: logging.LogRecord) -> tuple[EventDefinition | None, Mapping[str, Any]]:
    event = getattr(record, "waypost_event", None)
    fields = getattr(record, "waypost_fields", {})
    return event, fields


def _timestamp(created: float) -> str:
    millis = int(created % 1 * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-11-23T10:00:00.000Z WARNING 1201 store: Bad message 7 moved to quarantine: …`"""

    def format(self, record: logging.LogRecord) -> str:
        event, _ = _record_event(record)
        tag = f"{event.id} {event.category.value}" if event else record.name
        line = f"{_timestamp(record.created)} {record.levelname} {tag}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, id, name, severity, category, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _record_event(record)
        doc: dict[str, Any] = {
            "time": _timestamp(record.created),
            "severity": record.levelname,
            "message": record.getMessage(),
        }
        if event:
            doc.update(id=event.id, name=event.name, category=event.category.value)
            doc["fields"] = {k: _jsonable(v) for k, v in fields.items()}
        else:
            doc["logger"] = record.name
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def configure_logging(
    *, level: str = "INFO", json_file: str | None = None, stream: TextIO | None = None
) -> None:
    """Readable lines on the terminal (stderr), and JSON lines to a file when asked."""
    root = logging.getLogger("waypost")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level.upper())
    root.propagate = False
    terminal = logging.StreamHandler(stream or sys.stderr)
    terminal.setFormatter(TextFormatter())
    root.addHandler(terminal)
    if json_file:
        file_handler = logging.FileHandler(json_file, encoding="utf-8")
        file_handler.setFormatter(JsonFormatter())
        root.addHandler(file_handler)


def markdown() -> str:
    """The catalogue as the Markdown of docs/events.md."""
    lines = [
        "# Events",
        "",
        "Every event Waypost logs has a number, a severity and a diagnostics-logging",
        "category. `waypost events` prints this catalogue; the JSON log (`[log] json_file`)",
        "carries `id`, `name`, `category` and the event's `fields` on every line.",
        "",
        "This file is generated: `waypost events --markdown > docs/events.md`.",
        "",
        "| id | name | severity | category | message | what to do |",
        "|---|---|---|---|---|---|",
    ]
    for e in catalogue():
        message = e.template.replace("|", "\\|")
        lines.append(
            f"| {e.id} | {e.name} | {e.severity.name} | {e.category.value} | {message} | "
            f"{e.action} |"
        )
    return "\n".join(lines) + "\n"
