"""The catalogue of numbered events and how they are emitted through `logging`.

Every event an operator may see has an id, a severity, a category, a message
template and what to do about it; `waypost events` prints this catalogue. An event
that a peer can cause at will names the field that holds the peer's address
(`limit_by`): from each peer, only so many of it are logged per minute, and the
rest are counted in one summary line (event 1020), so that a fuzzer or a flood
cannot fill the disk with the log.
"""

from __future__ import annotations

import atexit
import enum
import heapq
import ipaddress
import json
import logging
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO


class Severity(enum.IntEnum):
    """Event severities, ordered and mapped onto `logging` levels."""

    DEBUG = logging.DEBUG  # the protocol trace, written at a category's maximum level
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
    GATEWAY = "gateway"
    SECURITY = "security"
    RESOURCE = "resource"


# A category's level as an Exchange administrator sets it, or as a logging level.
CATEGORY_LEVELS = {
    "none": logging.ERROR,
    "minimum": logging.WARNING,
    "medium": logging.INFO,
    "maximum": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventDefinition:
    """One entry of the catalogue."""

    id: int
    name: str
    severity: Severity
    category: Category
    template: str
    action: str
    # The field naming the peer that causes the event, when a peer can cause it at will:
    # the event is then rate-limited per peer (see RateLimit).
    limit_by: str | None = None
    # Fields the JSON line and the event's observers (tracking, metrics) carry beyond
    # those the message text names: the message's ids, sizes, the remote reply.
    extra: tuple[str, ...] = ()

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
    id: int,
    name: str,
    severity: Severity,
    category: Category,
    template: str,
    action: str,
    *,
    limit_by: str | None = None,
    extra: tuple[str, ...] = (),
) -> EventDefinition:
    if id in CATALOGUE:
        raise ValueError(f"event id {id} defined twice")
    event = EventDefinition(
        id=id,
        name=name,
        severity=severity,
        category=category,
        template=template,
        action=action,
        limit_by=limit_by,
        extra=extra,
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

EVENTS_SUPPRESSED = _define(
    1020,
    "events-suppressed",
    S.WARNING,
    C.SYSTEM,
    "Suppressed {count} more events {event} from {source} in the {seconds} s after {since}",
    "Look at the first events of that kind from that peer (logged before this line): a "
    "misbehaving or hostile peer, or a scanner.",
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

# Reload (SIGHUP, `waypost reload`): numbered from 1110 within the configuration's range.
CONFIG_RELOADED = _define(
    1110,
    "config-reloaded",
    S.INFO,
    C.CONFIG,
    "Configuration reloaded from {source}; changed: {changed}",
    "None: new connections and deliveries use it; those in progress finish under the old one.",
)
CONFIG_RELOAD_REFUSED = _define(
    1111,
    "config-reload-refused",
    S.ERROR,
    C.CONFIG,
    "Reload of {source} refused: {key}: {reason}; the configuration in force is unchanged",
    "Correct the named key (`waypost config check FILE`), then reload again.",
)
CONFIG_NEEDS_RESTART = _define(
    1112,
    "config-needs-restart",
    S.WARNING,
    C.CONFIG,
    "Configuration {source}: {key} changed from {old} to {new}; it takes effect only at a "
    "restart, {old} stays in force until then",
    "Restart Waypost (`systemctl restart waypost`) when the change is wanted now.",
)
LOG_REOPENED = _define(
    1113,
    "log-reopened",
    S.INFO,
    C.CONFIG,
    "Log file {path} (re)opened",
    "None: after a log rotation, the old file can be compressed or removed.",
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
STORE_RECONNECTED = _define(
    1206,
    "store-reconnected",
    S.WARNING,
    C.STORE,
    "Connection to the MTA database {path} lost and opened again",
    "None if it happens once (a database server restarted or failed over); if often, "
    "look at the network and the database server's log.",
)
STORE_MIGRATED = _define(
    1207,
    "store-migrated",
    S.INFO,
    C.STORE,
    "MTA database {path} brought from schema version {old} to {new}",
    "None.",
)
NODE_JOINED = _define(
    1220,
    "node-joined",
    S.INFO,
    C.STORE,
    "Node {node} ({run}) joined the cluster on {path}; {nodes} nodes running",
    "None.",
)
NODE_LEFT = _define(
    1221,
    "node-left",
    S.INFO,
    C.STORE,
    "Node {node} ({run}) left the cluster and handed back {count} leased recipients",
    "None.",
)
NODE_LOST = _define(
    1222,
    "node-lost",
    S.ERROR,
    C.STORE,
    "Node {node} ({run}) sent no heartbeat for {silent}s; node {by} took over its "
    "{count} leased recipients",
    "Find out why the node stopped (its log, its machine); its work goes on on the other "
    "nodes. A recipient it was delivering may be delivered twice.",
)
NODE_DECLARED_LOST = _define(
    1223,
    "node-declared-lost",
    S.ERROR,
    C.STORE,
    "This node ({node}, {run}) was declared lost by the cluster after {silent}s "
    "without a heartbeat; it joins again",
    "Look for what stalled the node or its connection to the database; its leases were "
    "taken over, so some recipients may be delivered twice.",
)
TRACKING_UNAVAILABLE = _define(
    1210,
    "tracking-unavailable",
    S.ERROR,
    C.STORE,
    "The tracking journal {path} cannot be used: {reason}; mail flows, its steps are not recorded",
    "Check the file's permissions and free space, or move a damaged journal aside (it "
    "holds only records, no mail); restart to record again.",
)
TRACKING_WRITE_FAILED = _define(
    1211,
    "tracking-write-failed",
    S.WARNING,
    C.STORE,
    "Writing {count} records to the tracking journal {path} failed: {error}; those records "
    "are lost, no mail is",
    "Check free disk space; the journal records again once writes succeed.",
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
    extra=("next_hop", "mts_id"),
)
RECIPIENT_EXPIRED = _define(
    1401,
    "recipient-expired",
    S.WARNING,
    C.QUEUE,
    "Message {message_id} to {recipient} expired after {attempts} attempts via {next_hop}; "
    "a report is owed. Last error: {error}",
    "Find out why the next hop did not accept it.",
    extra=("mts_id",),
)
RECIPIENT_FAILED = _define(
    1402,
    "recipient-failed",
    S.WARNING,
    C.QUEUE,
    "Message {message_id} to {recipient} failed permanently: {error}",
    "None: a non-delivery report is owed to the originator.",
    extra=("next_hop", "mts_id"),
)
QUEUE_ADMIN = _define(
    1403,
    "queue-admin",
    S.INFO,
    C.QUEUE,
    "Operator {user} (uid {uid}) ran {action} on message ids {ids}: {count} recipients changed",
    "None: the audit trail of the operators' queue actions (`waypost queue …`).",
)
LEASES_RELEASED = _define(
    1404,
    "leases-released",
    S.INFO,
    C.QUEUE,
    "{count} recipients leased by the previous run queued again at start-up",
    "None.",
)
QUEUE_FLUSH_ASKED = _define(
    1407,
    "queue-flush-asked",
    S.INFO,
    C.QUEUE,
    "Asked to try due mail now (SIGUSR1): {hops} next hops down forgotten, back-offs ended",
    "None: `waypost queue retry` asks this of the running MTA after making mail due.",
)
RECIPIENT_REROUTED = _define(
    1406,
    "recipient-rerouted",
    S.INFO,
    C.ROUTING,
    "Message {message_id} to {recipient} re-routed by the operator: next hop {old} is now {new}",
    "None.",
)
DESTINATION_DOWN = _define(
    1410,
    "destination-down",
    S.WARNING,
    C.QUEUE,
    "Next hop {next_hop} is unreachable: {error}; its recipients are deferred without a try "
    "each until a probe at {probe_at}",
    "Check the next hop (its address, its state, the network between). Delivery resumes by "
    "itself once a probe reaches it; a flush of the queue tries at once.",
)
DESTINATION_UP = _define(
    1411,
    "destination-up",
    S.INFO,
    C.QUEUE,
    "Next hop {next_hop} is reachable again (unreachable since {since}); {count} deferred "
    "recipients are due now",
    "None.",
)
MESSAGE_QUEUED = _define(
    1420,
    "message-queued",
    S.INFO,
    C.QUEUE,
    "Message {message_id} ({mts_id}) queued from {source} {peer}: {recipients} recipient(s), "
    "{size} bytes, Message-ID {msgid}",
    "None: the first record of the message's life (`waypost track`).",
    extra=("sender", "tls", "auth", "routes"),
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
    extra=("mts_id", "size", "detail", "remote_mta"),
)
LOCAL_DELIVERY_FAILED = _define(
    1501,
    "local-delivery-failed",
    S.WARNING,
    C.DELIVERY,
    "Local delivery of message {message_id} to {recipient} failed: {error}",
    "Check the Maildir's path, permissions and free space.",
)
MAILDIR_TMP_CLEANED = _define(
    1510,
    "maildir-tmp-cleaned",
    S.INFO,
    C.DELIVERY,
    "Removed {count} files left in the tmp/ directories under {root} for more than 36 hours "
    "(deliveries interrupted by a crash)",
    "None: such a file never reached new/, and its message was delivered again.",
)
PX_RECORD_UNUSABLE = _define(
    1520,
    "px-record-unusable",
    S.WARNING,
    C.ROUTING,
    "The PX records at {name} hold no usable MIXER mapping for {address}: {error}; it is "
    "mapped as if DNS held none",
    "Correct the PX records at that name (RFC 2163; docs/gateway.md shows their form). Until "
    "then the gateway maps the address by its own tables and fallback encodings.",
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
LOCAL_SUBMIT_ACCEPTED = _define(
    1610,
    "local-submit-accepted",
    S.INFO,
    C.INTERFACE,
    "Message {message_id} ({mts_id}) from {originator} submitted by uid {uid} through the "
    "maildrop: {recipients} recipients, {size} bytes",
    "None.",
)
LOCAL_SUBMIT_QUARANTINED = _define(
    1611,
    "local-submit-quarantined",
    S.WARNING,
    C.INTERFACE,
    "Maildrop file {file} from uid {uid} cannot be taken and was moved to {path}: {reason}",
    "Tell the user or program that submitted it; nothing else waits for it. Delete the file "
    "once it has been looked at.",
)
LOCAL_SUBMIT_DEFERRED = _define(
    1612,
    "local-submit-deferred",
    S.WARNING,
    C.INTERFACE,
    "Maildrop file {file} from uid {uid} could not be queued now: {error}; it stays in the "
    "maildrop and is tried again",
    "See the store's own event for the cause, usually a full disk; nothing is lost.",
)
LOCAL_SUBMIT_UNAVAILABLE = _define(
    1613,
    "local-submit-unavailable",
    S.ERROR,
    C.INTERFACE,
    "Local submission: {what} is not available: {error}",
    "Check the owner and modes of the data directory and of its maildrop and public "
    "directories (docs/operations.md, sendmail); files already dropped wait in the maildrop.",
)
LISTEN_FAILED = _define(
    1601,
    "listen-failed",
    S.CRITICAL,
    C.INTERFACE,
    "Cannot listen on {address} ({listener}): {reason}; Waypost does not start",
    "Stop what holds the address (`ss -ltnp`), or change the listen key of that listener.",
)
HTTP_LISTENING = _define(
    1620,
    "http-listening",
    S.INFO,
    C.INTERFACE,
    "The {service} listens on http://{address}/",
    "None. Keep it on loopback, or behind a TLS proxy that restricts who reaches it.",
)
CONSOLE_LOGIN_FAILED = _define(
    1621,
    "console-login-failed",
    S.WARNING,
    C.SECURITY,
    "{client}: console login as {username} refused",
    "None if rare; many suggest password guessing. Operators are in console.users.",
    limit_by="client",
)
CONSOLE_LOGIN = _define(
    1622,
    "console-login",
    S.INFO,
    C.SECURITY,
    "{client}: operator {username} logged in to the console",
    "None: the audit trail of who used the console.",
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
    limit_by="client",
)
SMTP_CONNECTION_REFUSED = _define(
    1702,
    "smtp-connection-refused",
    S.WARNING,
    C.SMTP,
    "Connection from {client} refused: {reason}",
    "Raise smtp.max_connections, smtp.max_connections_per_client or "
    "smtp.max_connections_per_network if legitimate clients hit the limit.",
    limit_by="client",
)
SMTP_VIOLATION = _define(
    1703,
    "smtp-violation",
    S.WARNING,
    C.SMTP,
    "{client}: {reason}",
    "None: the session was answered or closed; look for a misbehaving or hostile client.",
    limit_by="client",
)
SMTP_TIMEOUT = _define(
    1704,
    "smtp-timeout",
    S.INFO,
    C.SMTP,
    "{client}: idle for too long; session closed with 421",
    "None.",
    limit_by="client",
)
SMTP_DISK_LOW = _define(
    1705,
    "smtp-disk-low",
    S.WARNING,
    C.RESOURCE,
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
    limit_by="client",
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
    C.SECURITY,
    "{client}: AUTH {mechanism} failed for user {username}",
    "None if rare; many suggest password guessing.",
    limit_by="client",
)
SMTP_TLS_FAILED = _define(
    1709,
    "smtp-tls-failed",
    S.WARNING,
    C.SECURITY,
    "{client}: TLS handshake failed: {error}",
    "Check smtp.tls_cert and smtp.tls_key if every client fails.",
    limit_by="client",
)
SMTP_HOP_FAILED = _define(
    1710,
    "smtp-hop-failed",
    S.WARNING,
    C.SMTP,
    "Next hop {next_hop}: {host} could not be used: {error}",
    "None if it is brief: the next host is tried, then the recipients are deferred. "
    "Check the next hop if it persists.",
    limit_by="host",
)
SMTP_TLS_FALLBACK = _define(
    1713,
    "smtp-tls-fallback",
    S.WARNING,
    C.SMTP,
    "{host}: the TLS handshake failed ({error}); opportunistic TLS, so the mail goes in clear text",
    "None if the host is not yours (it offers no cipher suite Waypost accepts, or a broken "
    'TLS); set smtp_client.tls = "required" where clear text is not acceptable.',
    limit_by="host",
)
SMTP_TRANSFER_TOO_SLOW = _define(
    1720,
    "smtp-transfer-too-slow",
    S.WARNING,
    C.SMTP,
    "{client}: message transfer too slow ({octets} octets in {seconds}s); session closed "
    "with 421 4.4.2",
    "None if rare: a client trickling its message holds a connection slot. If legitimate "
    "clients on slow links hit it, raise smtp.data_deadline or lower smtp.min_data_rate.",
    limit_by="client",
)
SMTP_TRACE = _define(
    1790,
    "smtp-trace",
    S.DEBUG,
    C.SMTP,
    "{peer} {direction} {line}",
    "None: the protocol trace, written when the smtp category is at its maximum level "
    "(`<` read from the peer, `>` sent to it; passwords are never written).",
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
    C.SECURITY,
    "{client}: MTA bind as {mta_name} refused: {reason}",
    "Check the [[x400.peer]] entry (name, peer_password) if the peer is a known MTA; "
    "many refusals from one address suggest password guessing.",
    limit_by="client",
)
X400_ASSOCIATION_ABORTED = _define(
    1802,
    "x400-association-aborted",
    S.WARNING,
    C.X400,
    "P1 association with {peer} aborted in the {layer} layer: {reason}",
    "None if rare: an unconfirmed transfer stays with the sender, which tries again. "
    "Check the peer's configuration and software if it repeats.",
    limit_by="peer",
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
    limit_by="peer",
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
X400_IDLE_ASSOCIATION_LOST = _define(
    1825,
    "x400-idle-association-lost",
    S.INFO,
    C.X400,
    "Outbound P1 association with {peer}, idle, is no longer known to the peer ({reason}); "
    "transfers use a new one",
    "None: the adjacent MTA restarted or dropped the association; nothing is deferred.",
)
X400_PERMANENT_OPEN_FAILED = _define(
    1829,
    "x400-permanent-open-failed",
    S.WARNING,
    C.X400,
    "Permanent association to {peer} could not be opened: {error}; tried again at {retry_at}",
    "Check the peer's address and state; transfers to it open their own associations meanwhile.",
)
X400_FIELD_KEPT = _define(
    1826,
    "x400-field-kept",
    S.WARNING,
    C.X400,
    "{peer}: {kind} {mts_id}: {fields}; kept as received",
    "None: the object is taken and relayed as it came. Tell the peer's administrator if "
    "their MTA should keep to the field's ASN.1 type.",
    limit_by="peer",
)
X400_OBJECT_UNINTERPRETABLE = _define(
    1827,
    "x400-object-uninterpretable",
    S.WARNING,
    C.X400,
    "{peer}: {kind} {mts_id} cannot be interpreted ({reason}); accepted and {outcome}",
    "Tell the peer's administrator: their MTA sent an object X.411 does not allow.",
    limit_by="peer",
)

X400_CONTENT_NOT_DOWNGRADED = _define(
    1828,
    "x400-content-not-downgraded",
    S.WARNING,
    C.X400,
    "Message {message_id} for {peer}, an X.410 (1984) MTA, has P22 content with no P2 form "
    "({reason}); its recipients there fail with a non-delivery report",
    "None: a 1984 MTA refuses content type 22. If the peer handles X.420 (1988), set its "
    'mode to "1988".',
)
X400_TRACE = _define(
    1890,
    "x400-trace",
    S.DEBUG,
    C.X400,
    "{peer} {direction} {apdu}",
    "None: the protocol trace, written when the x400 category is at its maximum level "
    "(`<` from the peer, `>` to it; decoded summaries, never a password).",
)

# 1900-1999 gateways (MIXER: X.400 ⇄ Internet mail)
GATEWAY_CONVERTED = _define(
    1900,
    "gateway-converted",
    S.INFO,
    C.GATEWAY,
    "{conversion}: {recipients} recipient(s) of message {message_id} handed over as message "
    "{new_message_id} ({new_mts_id})",
    "None: the converted message is queued for the other world's recipients.",
)
GATEWAY_CONVERSION_FAILED = _define(
    1901,
    "gateway-conversion-failed",
    S.WARNING,
    C.GATEWAY,
    "Message {message_id} ({mts_id}) for {recipient} cannot be converted "
    "({conversion}): {error}; non-delivered with a report",
    "Look at the message with `waypost queue show`; if its content is valid, the mapping "
    "tables (`[[mixer.mapping]]`) may lack an entry.",
)
GATEWAY_LOOP = _define(
    1902,
    "gateway-loop",
    S.WARNING,
    C.GATEWAY,
    "Message {message_id} ({mts_id}) for {recipient} has crossed the gateway before "
    "({evidence}); non-delivered with loop-detected",
    "Check the routes and mapping tables: an address of one world maps to one that "
    "routes back to the gateway.",
)
GATEWAY_CONVERTED_ON_ARRIVAL = _define(
    1903,
    "gateway-converted-on-arrival",
    S.INFO,
    C.GATEWAY,
    "{conversion} on arrival: message {mts_id} for {recipients} recipient(s) queued as "
    "message {new_message_id} ({new_mts_id})",
    "None: every recipient crosses the gateway, so only the converted message is stored.",
)

# 1950-1969 the AFTN/AMHS gateway (ICAO Doc 9880 Part II)
AFTN_RECEIVED = _define(
    1950,
    "aftn-received",
    S.INFO,
    C.GATEWAY,
    "AFTN message {transmission_id} from {peer} ({priority}, filed {filing_time} by "
    "{originator}) queued as AMHS message {message_id} ({mts_id}) for {recipients} "
    "recipient(s)",
    "None.",
)
AFTN_REFUSED = _define(
    1951,
    "aftn-refused",
    S.WARNING,
    C.GATEWAY,
    "AFTN message from {peer} refused: {reason}",
    "The station sent something that is not an AFTN message in the configured framing "
    "([amhs] framing); check the framing both sides use.",
)
AFTN_SERVICE_MESSAGE = _define(
    1952,
    "aftn-service-message",
    S.WARNING,
    C.GATEWAY,
    "AFTN message {transmission_id} from {peer} (filed {filing_time} by {originator}): "
    "{reason}; service message sent to {originator}",
    "Check the register of AMHS management domains ([amhs] register) for the addresses named.",
)
AFTN_SENT = _define(
    1953,
    "aftn-sent",
    S.INFO,
    C.GATEWAY,
    "Message {message_id} ({mts_id}) sent to AFTN station {peer} as {transmission_id} "
    "({priority}) for {addressees}",
    "None.",
)
AFTN_REPORT_ABSORBED = _define(
    1955,
    "aftn-report-absorbed",
    S.INFO,
    C.GATEWAY,
    "Report {mts_id} (message {message_id}) to an AFTN user absorbed by the gateway: {reason}",
    "None: AFTN has no form for delivery reports, nor for non-delivery other than unknown "
    "addresses.",
)
AFTN_SEQUENCE_GAP = _define(
    1956,
    "aftn-sequence-gap",
    S.WARNING,
    C.GATEWAY,
    "AFTN circuit {circuit} from {peer}: message {transmission_id} came where number "
    "{expected} was expected; messages may be missing",
    "Ask the sending station about the numbers between (Annex 10 Volume II: the "
    "channel-sequence number shows a lost message).",
)
AFTN_NOT_QUEUED = _define(
    1954,
    "aftn-not-queued",
    S.ERROR,
    C.GATEWAY,
    "AFTN message {transmission_id} from {peer} could not be queued: {error}; the "
    "connection is closed so that the station sends it again",
    "See the MTA database's events (12xx).",
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


# Who else hears an event, whatever its logging level: the counters and the tracking
# journal take their facts from the same call that logs them, so they cannot disagree.
Observer = Callable[[EventDefinition, Mapping[str, object]], None]
_observers: dict[int, tuple[Observer, ...]] = {}


def observe(watched: Iterable[EventDefinition], observer: Observer) -> Callable[[], None]:
    """Call `observer(event, fields)` at each emit of the watched events, before the log's
    level and rate limit are applied; returns the function that stops it."""
    ids = [event.id for event in watched]
    for event_id in ids:
        _observers[event_id] = (*_observers.get(event_id, ()), observer)

    def stop() -> None:
        for event_id in ids:
            left = tuple(o for o in _observers.get(event_id, ()) if o is not observer)
            if left:
                _observers[event_id] = left
            else:
                _observers.pop(event_id, None)

    return stop


def enabled(event: EventDefinition) -> bool:
    """Whether `emit` would do anything with the event (log it, or tell an observer): lets
    a hot path skip gathering its fields."""
    return event.id in _observers or _CATEGORY_LOGGERS[event.category].isEnabledFor(event.severity)


def emit(event: EventDefinition, **fields: object) -> None:
    """Log one numbered event with its fields as a structured record (unless the peer it
    names has used up its budget of such events: see RateLimit), and tell its observers."""
    watchers = _observers.get(event.id)
    if watchers is not None:
        _tell(watchers, event, fields)
    limit = _limit
    if limit.pending and limit.clock() >= limit.next_end:
        _log_all(limit.ended())
    logger = _CATEGORY_LOGGERS[event.category]
    if not logger.isEnabledFor(event.severity):
        return
    if event.limit_by is not None:
        allowed, summaries = limit.allow(event, fields.get(event.limit_by))
        _log_all(summaries)
        if not allowed:
            return
    _log(event, fields)


def _tell(
    watchers: tuple[Observer, ...], event: EventDefinition, fields: Mapping[str, object]
) -> None:
    for watcher in watchers:
        try:
            watcher(event, fields)
        except Exception as exc:
            # An observer's fault costs its own record, never the caller's work.
            if event is not UNEXPECTED_ERROR:
                emit(UNEXPECTED_ERROR, component=f"observer of event {event.id}", error=repr(exc))


def _log(event: EventDefinition, fields: Mapping[str, object]) -> None:
    _CATEGORY_LOGGERS[event.category].log(
        event.severity,
        "%s",
        event.render(fields),
        extra={"waypost_event": event, "waypost_fields": fields},
    )


# (EVENTS_SUPPRESSED, its fields): a summary of the events a window held back.
_Summary = tuple[EventDefinition, dict[str, object]]


def _log_all(summaries: list[_Summary]) -> None:
    for event, fields in summaries:
        _log(event, fields)


@dataclass(slots=True)
class _Window:
    start: float  # on the limit's clock
    since: float  # wall clock, for the summary
    logged: int = 0
    suppressed: int = 0


@dataclass(eq=False)
class RateLimit:
    """At most `budget` events of one kind from one peer in each `window` seconds, from
    the first: the rest are counted, and the count is logged in one line (1020) when the
    window ends — at the next event logged after that, or at `flush_suppressed()`.

    The peer is the field the event names by `limit_by`, without a port (a flood comes
    over many connections). At most `max_sources` windows are kept: past that, the oldest
    is ended early."""

    budget: int = 100
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    max_sources: int = 10_000
    pending: bool = False  # some window has suppressed events
    next_end: float = float("inf")  # the earliest end of such a window
    _windows: dict[tuple[int, str], _Window] = field(default_factory=dict)
    _ends: list[tuple[float, tuple[int, str], float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, event: EventDefinition, value: object) -> tuple[bool, list[_Summary]]:
        """Whether to log this event, and the summaries of windows it ended."""
        key = (event.id, peer_of(value))
        now = self.clock()
        summaries: list[_Summary] = []
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window.start >= self.window:
                self._end(key, window, summaries)
                window = None
            if window is None:
                while len(self._windows) >= self.max_sources:
                    oldest = next(iter(self._windows))
                    self._end(oldest, self._windows[oldest], summaries)
                window = self._windows[key] = _Window(start=now, since=time.time())
            if window.logged < self.budget:
                window.logged += 1
                return True, summaries
            window.suppressed += 1
            if window.suppressed == 1:
                end = window.start + self.window
                heapq.heappush(self._ends, (end, key, window.start))
                self.pending, self.next_end = True, self._ends[0][0]
            return False, summaries

    def ended(self, *, everything: bool = False) -> list[_Summary]:
        """The summaries of the windows that have ended (all of them, with `everything`)."""
        now = self.clock()
        summaries: list[_Summary] = []
        with self._lock:
            while self._ends and (everything or self._ends[0][0] <= now):
                _, key, start = heapq.heappop(self._ends)
                window = self._windows.get(key)
                if window is not None and window.start == start:
                    self._end(key, window, summaries)
            self.pending = bool(self._ends)
            self.next_end = self._ends[0][0] if self._ends else float("inf")
        return summaries

    def _end(self, key: tuple[int, str], window: _Window, out: list[_Summary]) -> None:
        del self._windows[key]
        if window.suppressed:
            event = CATALOGUE[key[0]]
            fields: dict[str, object] = {
                "count": window.suppressed,
                "event": f"{event.id} {event.name}",
                "source": key[1],
                "seconds": f"{self.window:g}",
                "since": _timestamp(window.since),
            }
            out.append((EVENTS_SUPPRESSED, fields))


def peer_of(value: object) -> str:
    """The peer's address in an event field, without its port: `192.0.2.1:4711`,
    `[2001:db8::1]:4711` and `PEER-MTA (192.0.2.1:4711)` name 192.0.2.1 and 2001:db8::1."""
    text = str(value)
    if text.endswith(")") and " (" in text:
        text = text[text.rindex(" (") + 2 : -1]
    head, colon, port = text.rpartition(":")
    if colon and head and port.isdigit():
        if head.startswith("[") and head.endswith("]"):
            return head[1:-1]
        if ":" not in head:
            return head
        try:
            ipaddress.ip_address(head)  # an IPv6 address with a port after it
        except ValueError:
            return text  # an IPv6 address alone
        return head
    return text


_limit = RateLimit()


def limit_rate(
    *, budget: int = 100, window: float = 60.0, clock: Callable[[], float] = time.monotonic
) -> None:
    """Set the budget of rate-limited events per peer, and start counting afresh."""
    with _limit._lock:
        _limit.budget, _limit.window, _limit.clock = budget, window, clock
        _limit._windows.clear()
        _limit._ends.clear()
        _limit.pending, _limit.next_end = False, float("inf")


def flush_suppressed() -> None:
    """Log the summaries of every window with suppressed events now (at a stop)."""
    _log_all(_limit.ended(everything=True))


# At the latest when the process ends (before logging's own exit handler closes the files).
atexit.register(flush_suppressed)


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
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def set_category_levels(categories: Mapping[Any, str]) -> None:
    """Each named category at its own level (`CATEGORY_LEVELS`); the others follow the
    `waypost` logger's. Takes effect at once, for the next event."""
    for category, logger in _CATEGORY_LOGGERS.items():
        name = categories.get(category.value)
        logger.setLevel(CATEGORY_LEVELS[name.lower()] if name else logging.NOTSET)


def configure_logging(
    *,
    level: str = "INFO",
    json_file: str | None = None,
    stream: TextIO | None = None,
    categories: Mapping[Any, str] | None = None,
) -> None:
    """Readable lines on the terminal (stderr), and JSON lines to a file when asked; each
    category in `categories` at its own level.

    Called again (a reload), it reopens the file by its name, so that a log rotated away
    is left alone; the file is opened before the old handlers go, so an OSError leaves
    logging as it was.
    """
    file_handler = None
    if json_file:
        file_handler = logging.FileHandler(json_file, encoding="utf-8")
        file_handler.setFormatter(JsonFormatter())
    root = logging.getLogger("waypost")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level.upper())
    root.propagate = False
    terminal = logging.StreamHandler(stream or sys.stderr)
    terminal.setFormatter(TextFormatter())
    root.addHandler(terminal)
    if file_handler is not None:
        root.addHandler(file_handler)
    set_category_levels(categories or {})


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
        if e.extra:
            message += " (the JSON line also: " + ", ".join(f"`{f}`" for f in e.extra) + ")"
        lines.append(
            f"| {e.id} | {e.name} | {e.severity.name} | {e.category.value} | {message} | "
            f"{e.action} |"
        )
    return "\n".join(lines) + "\n"


# Events an operator's command records for the audit trail (`waypost queue hold`, …).
OPERATOR_EVENTS = frozenset({QUEUE_ADMIN.id})


class _OperatorOrAtLeast(logging.Filter):
    """Lets through records at `level` and worse, and the operator's own actions whatever
    the level: an audit trail is not thinned by `[log] level = "warning"`."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        event, _ = _record_event(record)
        return record.levelno >= self.level or (event is not None and event.id in OPERATOR_EVENTS)


def configure_command_logging(
    *, level: str, json_file: str | None, stream: TextIO | None = None
) -> OSError | None:
    """Logging for a command that changes the queue: every event at `level` (the operator's
    actions at any level) into the JSON log the MTA writes, so an auditor finds the
    operator's actions beside the MTA's, and only warnings on the terminal. Without a JSON
    log, or when it cannot be opened (returned, for the command to say), the operator's
    actions go to the terminal."""
    file_handler: logging.Handler | None = None
    failure: OSError | None = None
    if json_file:
        try:
            file_handler = logging.FileHandler(json_file, encoding="utf-8")
        except OSError as exc:
            failure = exc
    root = logging.getLogger("waypost")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate = False
    terminal = logging.StreamHandler(stream or sys.stderr)
    terminal.setFormatter(TextFormatter())
    threshold = int(logging.getLevelName(level.upper()))
    root.setLevel(min(logging.INFO, threshold))
    if file_handler is None:
        terminal.addFilter(_OperatorOrAtLeast(logging.WARNING))
    else:
        terminal.setLevel(logging.WARNING)
        file_handler.setFormatter(JsonFormatter())
        file_handler.addFilter(_OperatorOrAtLeast(threshold))
        root.addHandler(file_handler)
    root.addHandler(terminal)
    return failure
