"""`waypost serve`: the data directory, the start-up check, the store and the queue manager.

The data directory holds a pid file that is locked while Waypost runs and
emptied when it stops cleanly; finding it non-empty and unlocked at start-up
means the last run did not stop cleanly, and the database is checked (and
bad objects quarantined) before anything else touches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from waypost import __version__, events
from waypost.address import parse_oraddress
from waypost.aftn.inbound import AftnGateway, AftnServer
from waypost.amhs.aftn import Framing
from waypost.amhs.convert import GatewaySettings
from waypost.amhs.record import record_of_ipm
from waypost.arrival import Arrival, Queued, Source
from waypost.clock import Clock, SystemClock
from waypost.config import EMBEDDED, Config, ConfigError, load_config
from waypost.config.values import parse_address
from waypost.console.recent import RecentEvents
from waypost.delivery.aftn import AftnDeliverer
from waypost.delivery.error import ErrorDeliverer
from waypost.delivery.gateway import GatewayDeliverer
from waypost.delivery.lmtp import LmtpDeliverer
from waypost.delivery.local import LocalDeliverer
from waypost.delivery.maildir import MaildirStore
from waypost.delivery.mime_mailboxes import MimeMailboxes
from waypost.delivery.px_lookup import PxLookup
from waypost.delivery.smtp import SmtpDeliverer
from waypost.delivery.x400 import X400Deliverer
from waypost.delivery.x400_store import X400Store
from waypost.handoff import Conversion, Deliverer, Handoff
from waypost.intake import Intake, record_queued
from waypost.local_submit.dropfile import QUARANTINE, maildrop_dir, public_dir
from waypost.local_submit.pickup import PickupSettings
from waypost.local_submit.server import LocalSubmission
from waypost.message import Message
from waypost.mixer.address_map import AddressMapper, Gateway
from waypost.net import sdnotify
from waypost.net.listener import ConnectionLimits, ListenError
from waypost.queue.manager import QueueManager
from waypost.queue.reports import ReportGenerator
from waypost.queue.slots import reserved_slots
from waypost.setup.amhs import aftn_stations, build_register, gateway_settings
from waypost.setup.intake import build_intake, database_location, database_path
from waypost.setup.mixer import build_mapper
from waypost.setup.preflight import directory_problem
from waypost.setup.reload import (
    RunTimeSettings,
    changed_keys,
    client_settings,
    keep_restart_only,
    lifetimes,
    queue_settings,
    retry_policy,
    run_time_settings,
)
from waypost.setup.smtp import (
    SmtpSetupError,
    smtp_limits,
    smtp_listeners,
    smtp_server_config,
)
from waypost.setup.x400 import x400_settings
from waypost.smtp.server import SmtpServer
from waypost.store.base import NewMessage, StoreCorruptError, StoreError
from waypost.store.check import check_database
from waypost.store.check.structure import describe_error, reports_damage
from waypost.store.group_commit import GroupCommitStore
from waypost.store.schema import connect
from waypost.store.sqlite import SQLiteStore
from waypost.tracking.ats_record import ATSRecorder
from waypost.tracking.journal import Journal, Retention
from waypost.tracking.recorder import record_into
from waypost.x400.association import X400Server

if TYPE_CHECKING:
    from waypost.console.app import ConsoleServer
    from waypost.console.context import ConsoleContext, PeerView
    from waypost.metrics.server import Metrics, MetricsServer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: try again once the other instance stopped
EXIT_DATABASE_UNUSABLE = 76
ATS_RECORD_FILE = "ats-record.db"
EXIT_CONFIG = 78  # EX_CONFIG: the configuration names a file that cannot be used
RECOVERY_HINT = (
    "Waypost will not start on it: follow the recovery procedure in docs/operations.md "
    "(When the database file itself is damaged)"
)


class ServiceError(Exception):
    """Waypost cannot start; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def prepare_data_dir(path: str) -> Path:
    """Create the data directory owner-only but traversable (0711: `waypost-sendmail`
    reaches the maildrop and the public sockets, nobody else lists it); tighten it if it
    exists with looser modes.

    A directory Waypost cannot write in stops it here, named with the reason (event 1005,
    exit code 76), before anything is opened in it.
    """
    problem = directory_problem(path)
    if problem is None:
        data_dir = Path(path)
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
            if data_dir.stat().st_mode & 0o077 != 0o011:
                data_dir.chmod(0o711)
        except OSError as exc:
            problem = exc.strerror or str(exc)
        else:
            return data_dir
    raise data_dir_unusable(path, problem)


def data_dir_unusable(path: str | Path, reason: str) -> ServiceError:
    """Event 1005 and the error that stops the start."""
    events.emit(events.DATA_DIR_UNUSABLE, path=path, reason=reason)
    return ServiceError(
        f"the data directory {path} cannot be used: {reason}", EXIT_DATABASE_UNUSABLE
    )


@dataclass
class RunLock:
    """The locked pid file; `previous_pid` is set when the last run stopped uncleanly, and
    `check_pending` until the check that calls for has finished."""

    fd: int
    path: Path
    previous_pid: int | None
    check_pending: bool = False

    @classmethod
    def acquire(cls, data_dir: Path) -> RunLock:
        path = data_dir / "waypost.pid"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise data_dir_unusable(data_dir, f"{path.name}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            events.emit(events.ALREADY_RUNNING, pid=other or "?", data_dir=data_dir)
            raise ServiceError(
                f"another Waypost (pid {other or '?'}) is using {data_dir}", EXIT_ALREADY_RUNNING
            ) from None
        try:
            left = os.read(fd, 32).decode(errors="replace").strip()
            previous = int(left) if left.isdigit() else (0 if left else None)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except OSError as exc:  # a full disk, an I/O error
            os.close(fd)
            raise data_dir_unusable(data_dir, f"{path.name}: {exc.strerror or exc}") from None
        return cls(fd=fd, path=path, previous_pid=previous, check_pending=previous is not None)

    def release_clean(self) -> None:
        """Mark a clean stop (an empty pid file) and unlock."""
        os.ftruncate(self.fd, 0)
        os.fsync(self.fd)
        os.close(self.fd)

    def release_unclean(self) -> None:
        """Unlock, leaving the pid in the file: the next start checks the database again."""
        os.close(self.fd)


def running_pid(data_dir: Path) -> int | None:
    """The pid of the Waypost serving `data_dir`, or None when none is: its pid file is
    locked for as long as it runs. OSError when the pid file cannot be read."""
    try:
        fd = os.open(data_dir / "waypost.pid", os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# The last events logged, for the console (one per process; its logging handler is put
# back after each reconfiguration of the log).
RECENT_EVENTS = RecentEvents()
# Seconds between two snapshots of the queue for the console's charts.
SNAPSHOT_INTERVAL = 5.0


def keep_recent_events() -> None:
    """The console's handler among the `waypost` logger's (configure_logging replaces them)."""
    root = logging.getLogger("waypost")
    if RECENT_EVENTS not in root.handlers:
        root.addHandler(RECENT_EVENTS)


def open_logs(config: Config) -> None:
    """Log as [log] says; again at a reload, which reopens `json_file` by its name (after a
    rotation, the renamed file gets no more lines). OSError when it cannot be opened."""
    json_file = config.log.json_file or None
    if json_file:
        Path(json_file).parent.mkdir(parents=True, exist_ok=True)
    events.configure_logging(
        level=config.log.level, json_file=json_file, categories=config.log.categories
    )
    if config.console.enabled:
        keep_recent_events()
    if json_file:
        events.emit(events.LOG_REOPENED, path=json_file)


def mime_mailboxes(config: Config) -> MimeMailboxes | None:
    """`[local] mime_mailboxes`, with the gateway's mappings for the addresses in the
    heading (or, without a gateway, its fallbacks at this MTA's names)."""
    table = config.local.mime_mailboxes
    if not table:
        return None
    mapper = (
        build_mapper(config)
        if config.mixer.enabled
        else AddressMapper(
            Gateway(config.server.hostname, parse_oraddress(config.x400.global_domain))
        )
    )
    return MimeMailboxes(
        table, mapper, x400_domain=config.x400.global_domain, hostname=config.server.hostname
    )


def px_lookup(config: Config, clock: Clock) -> PxLookup | None:
    """RFC 2163 lookups of `[mixer] dns`, at the configured name servers and X.400 root."""
    mixer = config.mixer
    if not mixer.dns:
        return None
    return PxLookup.with_nameservers(
        mixer.dns_nameservers, x400_root=mixer.dns_x400_root or ".", clock=clock
    )


def check_after_unclean_stop(db_path: str, previous_pid: int) -> None:
    """Run the checker with repair; refuse to start on a database that cannot be used."""
    events.emit(events.UNCLEAN_STOP_DETECTED, pid=previous_pid or "?")
    if not Path(db_path).exists():
        return
    report = check_database(db_path, repair=True)
    if report.fatal:
        raise ServiceError(
            f"the MTA database {db_path} is damaged: {report.fatal}. {RECOVERY_HINT}",
            EXIT_DATABASE_UNUSABLE,
        )


def open_ats_record(config: Config) -> ATSRecorder:
    """The ATS record, in the data directory; one that cannot be opened stops the start (an
    ANSP must keep it)."""
    path = Path(config.server.data_dir) / ATS_RECORD_FILE
    try:
        return ATSRecorder(path, config.amhs.record_retention)
    except (OSError, sqlite3.Error) as exc:
        raise ServiceError(f"cannot open the ATS record {path}: {exc}", EXIT_FAILED) from None


def _x400_recorded(recorder: ATSRecorder) -> Callable[[Handoff, str], Awaitable[None]]:
    """The X.400 agent's hook: each ATS message it transferred, recorded."""

    async def recorded(handoff: Handoff, channel: str) -> None:
        record = record_of_ipm(
            handoff.envelope,
            handoff.content,
            [c.address for c in handoff.recipients],
            at=time.time(),
            direction="out",
            channel=channel,
            message_id=handoff.message_id,
        )
        if record is not None:
            await recorder.record(record)

    return recorded


def check_integrity_at_start(db_path: str) -> None:
    """After a clean stop, SQLite's quick check: a page damaged while Waypost was stopped
    (a torn write, a disk fault) stops the start, rather than surfacing mid-run."""
    if not Path(db_path).is_file():
        return
    try:
        conn = connect(db_path, readonly=True)
        try:
            lines = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not reports_damage(exc):
            return  # not damage (permissions, …): opening the store reports it
        reason = describe_error(exc)
    else:
        if lines == ["ok"]:
            return
        reason = "SQLite's quick check fails: " + "; ".join(lines[:3])
    events.emit(events.STORE_CORRUPT, path=db_path, reason=reason)
    raise ServiceError(
        f"the MTA database {db_path} is damaged: {reason}. {RECOVERY_HINT}",
        EXIT_DATABASE_UNUSABLE,
    )


def retention(config: Config) -> Retention:
    """How long and how many tracking records are kept ([tracking])."""
    return Retention(seconds=config.tracking.retention, max_records=config.tracking.max_records)


PICKUP_RESCAN = 1.0  # seconds, at the least, between two scans of the maildrop


def pickup_settings(config: Config) -> PickupSettings:
    """What the pickup of `waypost-sendmail`'s drops takes from the configuration."""
    data_dir = config.server.data_dir
    return PickupSettings(
        maildrop=maildrop_dir(data_dir),
        quarantine=Path(data_dir) / QUARANTINE,
        hostname=config.server.hostname,
        max_message_size=config.smtp.max_message_size,
        max_recipients=config.smtp.max_recipients,
        # Pickup is told of each file over its socket: the scan only catches what was
        # dropped while no MTA listened, so it need not run as often as a short
        # queue.poll_interval would have it (20 directory listings a second at 0.05).
        poll_interval=max(config.queue.poll_interval, PICKUP_RESCAN),
    )


async def open_store(config: Config, clock: Clock) -> GroupCommitStore:
    """The MTA database the configuration names, open: this machine's SQLite file, or the
    PostgreSQL database this node shares with the cluster's others (joined as [cluster])."""
    if config.store.backend == "postgresql":
        # Imported here: a Waypost on SQLite (and every command) does without the driver.
        from waypost.store.postgresql.store import NodeSettings, PostgresStore  # noqa: PLC0415

        cluster = config.cluster
        return await PostgresStore.open(
            config.store.dsn,
            clock=clock,
            lifetime=lifetimes(config),
            max_batch=config.store.max_batch,
            node=NodeSettings(
                name=cluster.node,
                heartbeat_interval=cluster.heartbeat_interval,
                node_timeout=cluster.node_timeout,
            ),
        )
    return await SQLiteStore.open(
        database_path(config),
        clock=clock,
        lifetime=lifetimes(config),
        max_batch=config.store.max_batch,
    )


class Service:
    """A running Waypost: the store, the routing table, the queue manager."""

    def __init__(
        self,
        config: Config,
        store: GroupCommitStore,
        intake: Intake,
        manager: QueueManager,
    ) -> None:
        self.config = config
        self.store = store
        self.intake = intake
        self.routing = intake.routing
        self.manager = manager
        self.smtp: SmtpServer | None = None
        # The [[smtp.listener]] servers (submission ports), in the configuration's order.
        self.smtp_listeners: list[SmtpServer] = []
        self.smtp_deliverer: SmtpDeliverer | None = None
        self.lmtp_deliverer: SmtpDeliverer | None = None
        # The MIXER gateway, when on: it converts a message for the other world on arrival.
        self.gateway: GatewayDeliverer | None = None
        self.x400: X400Server | None = None
        self.x400_deliverer: X400Deliverer | None = None
        # The AFTN/AMHS gateway, when [amhs] enabled: its settings, listeners and agent.
        self.aftn_settings: GatewaySettings | None = None
        self.aftn: AftnServer | None = None
        self.aftn_deliverer: AftnDeliverer | None = None
        # The ATS record: every ATS message transferred, kept whole ([amhs] record_retention).
        self.ats_recorder: ATSRecorder | None = None
        self.reports: ReportGenerator | None = None
        self.local_submission: LocalSubmission | None = None
        self.journal: Journal | None = None
        # The counters and gauges: kept when the metrics endpoint or the console is on.
        self.metrics: Metrics | None = None
        self.metrics_server: MetricsServer | None = None
        self.console: ConsoleServer | None = None
        self._untrack: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(cls, config: Config, *, clock: Clock | None = None) -> Service:
        clock = clock or SystemClock()
        intake = build_intake(config, clock)
        prepare_data_dir(config.server.data_dir)
        where = database_location(config)
        try:
            store = await open_store(config, clock)
        except StoreError as exc:
            events.emit(events.STORE_OPEN_FAILED, path=str(where), reason=str(exc))
            code = EXIT_DATABASE_UNUSABLE if isinstance(exc, StoreCorruptError) else EXIT_FAILED
            raise ServiceError(f"cannot open {where}: {exc}", code) from None
        released = await store.release_leases()
        messages, recipients = await store.counts()
        events.emit(events.STORE_OPENED, path=store.path, messages=messages, recipients=recipients)
        if released:
            events.emit(events.LEASES_RELEASED, count=released)
        maildirs = MaildirStore(
            Path(config.local.maildir),
            mailboxes=frozenset(config.local.mailboxes),
            hostname=config.server.hostname,
        )
        smtp_deliverer = SmtpDeliverer(client_settings(config))
        lmtp_deliverer = LmtpDeliverer(client_settings(config))
        x400_deliverer = X400Deliverer(x400_settings(config))
        deliverers: dict[str, Deliverer] = {
            "local": LocalDeliverer(
                maildirs,
                X400Store(
                    Path(config.local.x400_store),
                    hostname=config.server.hostname,
                    domain=config.x400.global_domain,
                    mailboxes=frozenset(config.local.x400_mailboxes),
                ),
                mime_mailboxes(config),
            ),
            "smtp": smtp_deliverer,
            "lmtp": lmtp_deliverer,
            "error": ErrorDeliverer(),
            "x400": x400_deliverer,
        }
        aftn = None
        ats_recorder = None
        if config.amhs.enabled:
            register, problems = build_register(config)
            if register is None:
                key, reason = problems[0] if problems else ("amhs.register", "not given")
                raise ServiceError(f"{config.source}: {key}: {reason}", EXIT_CONFIG)
            aftn = gateway_settings(config, register)
            ats_recorder = open_ats_record(config)
            deliverers["aftn"] = AftnDeliverer(
                aftn, aftn_stations(config), recorder=ats_recorder.record
            )
            x400_deliverer.on_transferred = _x400_recorded(ats_recorder)
        gateway = None
        if config.mixer.enabled:
            gateway = deliverers["gateway"] = GatewayDeliverer(
                build_mapper(config),
                intake,
                clock=clock,
                hostname=config.server.hostname,
                px=px_lookup(config, clock),
            )
        manager = QueueManager(
            store,
            deliverers,
            clock=clock,
            policy=retry_policy(config),
            settings=queue_settings(config),
            # In a cluster, leases name this node's run: what the others take over; and the
            # limit of deliveries per next hop holds across the nodes.
            owner=store.owner,
            gate=store.delivery_gate(
                config.queue.destination_concurrency,
                reserved_slots(config.queue.destination_concurrency, config.queue.urgent_share),
            ),
        )
        reports = ReportGenerator(
            store,
            intake,
            hostname=config.server.hostname,
            clock=clock,
            x400_domain=config.x400.global_domain,
            poll_interval=config.queue.poll_interval,
        )
        manager.on_report_owed = reports.wake
        service = cls(config, store, intake, manager)
        service.smtp_deliverer = smtp_deliverer
        service.lmtp_deliverer = lmtp_deliverer
        service.gateway = gateway
        service.x400_deliverer = x400_deliverer
        service.aftn_settings = aftn
        service.ats_recorder = ats_recorder
        aftn_deliverer = deliverers.get("aftn")
        service.aftn_deliverer = (
            aftn_deliverer if isinstance(aftn_deliverer, AftnDeliverer) else None
        )
        service.reports = reports
        service.start_tracking()
        service.start_metrics()
        return service

    def start_metrics(self) -> None:
        """Count from the start, when the metrics endpoint or the console will show them."""
        config = self.config
        if not (config.metrics.enabled or config.console.enabled):
            return
        # Imported here: only a service that serves them pays for prometheus-client and
        # aiohttp, not every `waypost` command that imports this module.
        from waypost.metrics.gauges import LiveSources  # noqa: PLC0415
        from waypost.metrics.server import Metrics  # noqa: PLC0415

        self.metrics = Metrics(
            self.store.queue_summary,
            LiveSources(
                associations=self._associations,
                smtp_connections=self._smtp_connections,
                hops_down=self.manager.destinations.down_hops,
            ),
            max_next_hops=config.metrics.max_next_hops,
            peers=[peer.name for peer in config.x400.peer],
        )
        self.metrics.start()
        counters = self.metrics.counters
        self.store.on_enqueued = counters.enqueue_seconds.observe
        self.store.on_commit = counters.committed

    def _associations(self) -> list[tuple[str, str, int]]:
        found: list[tuple[str, str, int]] = []
        peer = self.metrics.counters.peer if self.metrics is not None else str
        if self.x400 is not None:
            inbound: dict[str, int] = {}
            for name, count in self.x400.associations().items():
                inbound[peer(name)] = inbound.get(peer(name), 0) + count
            found += [(name, "inbound", count) for name, count in inbound.items()]
        if self.x400_deliverer is not None:
            found += [(peer(n), "outbound", c) for n, c in self.x400_deliverer.associations()]
        return found

    def _smtp_connections(self) -> list[tuple[str, int]]:
        servers = [self.smtp] if self.smtp is not None else []
        servers += self.smtp_listeners
        return [(s.listener.name, s.listener.open_connections) for s in servers]

    def start_tracking(self) -> None:
        """The tracking journal, when on; one that cannot be opened costs the records, not
        the mail (event 1210)."""
        tracking = self.config.tracking
        if not tracking.enabled:
            return
        try:
            self.journal = Journal(tracking.path, retention(self.config))
        except (OSError, sqlite3.Error) as exc:
            events.emit(events.TRACKING_UNAVAILABLE, path=tracking.path, reason=str(exc))
            return
        self.journal.start()
        self._untrack = record_into(self.journal)

    async def submit(self, message: Message) -> int:
        """Pass a message through the intake and enqueue it; returns its queue id once it is
        durable. Raises UnroutableError when a recipient has no route."""
        queued = await self.admit(message, Arrival(source=Source.SUBMIT))
        assert queued is not None  # a submitted message always has recipients to store
        return queued.message_id

    async def admit(self, message: Message, arrival: Arrival) -> Queued | None:
        """The intake's verdict on a message, enqueued (converted first when every
        recipient crosses the gateway); what every listener calls."""
        new = self.intake.admit(message, arrival)
        if new is None:
            return None
        recipients = len(new.next_hops)
        converted = await self._converted_on_arrival(new)
        stored = (
            new
            if converted is None
            else NewMessage(message=converted.message, next_hops=converted.next_hops)
        )
        message_id = await self.store.enqueue(stored)
        record_queued(message_id, stored, arrival, came_as=message)
        if self.ats_recorder is not None and arrival.source is Source.P1:
            envelope = stored.message.envelope
            record = record_of_ipm(
                envelope,
                stored.message.content,
                [r.address for r in envelope.recipients],
                at=self.intake.clock.now(),
                direction="in",
                channel=f"x400:{arrival.peer}",
                message_id=message_id,
            )
            if record is not None:
                await self.ats_recorder.record(record)
        if converted is not None:
            self.manager.counters["converted"] += recipients
            events.emit(
                events.GATEWAY_CONVERTED_ON_ARRIVAL,
                conversion=converted.kind,
                mts_id=message.envelope.mts_id,
                recipients=recipients,
                new_message_id=message_id,
                new_mts_id=converted.message.envelope.mts_id,
            )
        self.manager.wake()
        return Queued(message_id, recipients)

    async def _converted_on_arrival(self, new: NewMessage) -> Conversion | None:
        if self.gateway is None or not self.config.mixer.convert_on_arrival:
            return None
        try:
            return await self.gateway.convert_on_arrival(new)
        except Exception as exc:
            # Stored as it came instead: the queue converts it, or reports why not.
            events.emit(events.UNEXPECTED_ERROR, component="gateway", error=repr(exc))
            return None

    async def start_listeners(self) -> None:
        smtp = self.config.smtp
        base = smtp_server_config(self.config, self.routing, self.admit, self.intake.clock)
        if smtp.listen:
            self.smtp = SmtpServer(base, list(smtp.addresses), smtp_limits(smtp))
            await self.smtp.start()
        for listener in smtp_listeners(self.config, base):
            server = SmtpServer(
                listener.config, listener.addresses, listener.limits, name=listener.name
            )
            self.smtp_listeners.append(server)
            await server.start()
        x400 = self.config.x400
        if x400.listen:
            self.x400 = X400Server(
                x400_settings(self.config),
                self.admit,
                list(x400.addresses),
                ConnectionLimits(
                    max_total=x400.max_connections, max_per_client=x400.max_connections_per_client
                ),
            )
            await self.x400.start()
        amhs = self.config.amhs
        if self.aftn_settings is not None and amhs.listen:
            gateway = AftnGateway(
                self.aftn_settings,
                self.admit,
                self.intake.clock,
                recorder=self.ats_recorder.record if self.ats_recorder else None,
            )
            self.aftn = AftnServer(gateway, list(amhs.addresses), Framing(amhs.framing))
            await self.aftn.start()

    async def start_http(self) -> None:
        """The metrics endpoint and the console, each when on."""
        config = self.config
        if config.metrics.enabled and self.metrics is not None:
            # Imported here for the reason start_metrics gives.
            from waypost.metrics.server import MetricsServer  # noqa: PLC0415

            host, port = parse_address(config.metrics.listen)
            server = MetricsServer(self.metrics)
            try:
                await server.start(host, port)
            except OSError as exc:
                raise ListenError("metrics", host, port, exc) from None
            self.metrics_server = server
        if config.console.enabled:
            from waypost.console.app import start_console  # noqa: PLC0415

            host, port = parse_address(config.console.listen)
            try:
                self.console = await start_console(self._console_context(), host, port)
            except OSError as exc:
                raise ListenError("console", host, port, exc) from None

    def _console_context(self) -> ConsoleContext:
        from waypost.console.context import ConsoleContext  # noqa: PLC0415 - see start_metrics

        config = self.config
        return ConsoleContext(
            database=database_location(config),
            tracking_path=config.tracking.path if config.tracking.enabled else None,
            users_path=config.console.users,
            session_timeout=config.console.session_timeout,
            recent=RECENT_EVENTS,
            samples=self.metrics.samples if self.metrics is not None else None,
            peers=self._peers,
            queue_changed=self._queue_changed,
            hostname=config.server.hostname,
        )

    def _peers(self) -> list[PeerView]:
        """Each configured adjacent MTA with its associations now and its failures."""
        from waypost.console.context import PeerView  # noqa: PLC0415 - see start_metrics

        inbound = self.x400.associations() if self.x400 is not None else {}
        outbound = dict(self.x400_deliverer.associations()) if self.x400_deliverer else {}
        failed: dict[str, float] = {}
        if self.metrics is not None:
            for metric in self.metrics.counters.associations_failed.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        name = sample.labels["peer"]
                        failed[name] = failed.get(name, 0.0) + sample.value
        return [
            PeerView(
                name=peer.name,
                address=peer.address,
                inbound=inbound.get(peer.name, 0),
                outbound=outbound.get(peer.name, 0),
                failed=int(failed.get(peer.name, 0)),
            )
            for peer in self.config.x400.peer
        ]

    def _queue_changed(self) -> None:
        """An operator made mail due in the console: try it now, down next hops too."""
        self.manager.forget_back_offs()

    async def start_local_submission(self) -> None:
        """Pickup of what `waypost-sendmail` drops, and the sockets it and `mailq` use."""
        data_dir = self.config.server.data_dir
        self.local_submission = LocalSubmission(
            pickup_settings(self.config),
            public_dir(data_dir),
            database_location(self.config),
            self.admit,
        )
        await self.local_submission.start()

    def reload(self, reopen_logs: Callable[[Config], None] | None = None) -> bool:
        """SIGHUP: read the configuration file again and put it in force for new connections
        and deliveries; those in progress finish under the old one. A configuration that
        cannot be used is refused whole (event 1111) and the old one stays; a key that only
        a restart can change keeps its value (event 1112). Returns whether it was applied."""
        old = self.config
        source = old.source
        try:
            new = load_config(None if source == EMBEDDED else source)
        except ConfigError as exc:
            return self._refuse_reload(exc.key or "(the whole file)", exc.reason, reopen_logs)
        effective, pending = keep_restart_only(old, new)
        try:
            settings = run_time_settings(
                effective,
                self.admit,
                self.intake.clock,
                smtp_listener=self.smtp is not None or bool(self.smtp_listeners),
            )
        except (SmtpSetupError, ValueError) as exc:
            key, _, reason = str(exc).partition(": ")
            return self._refuse_reload(key, reason or key, reopen_logs)
        if reopen_logs is not None:
            try:
                reopen_logs(effective)
            except OSError as exc:
                reason = f"cannot open {exc.filename or effective.log.json_file}: {exc.strerror}"
                return self._refuse_reload("log.json_file", reason, reopen_logs)
        for change in pending:
            events.emit(
                events.CONFIG_NEEDS_RESTART,
                source=source,
                key=change.key,
                old=change.old,
                new=change.new,
            )
        self._put_in_force(effective, settings)
        changed = changed_keys(old, effective)
        events.emit(events.CONFIG_RELOADED, source=source, changed=", ".join(changed) or "nothing")
        return True

    def _refuse_reload(
        self, key: str, reason: str, reopen_logs: Callable[[Config], None] | None
    ) -> bool:
        if reopen_logs is not None:
            # A rotated log is reopened all the same, under the settings in force.
            with contextlib.suppress(OSError):
                reopen_logs(self.config)
        events.emit(events.CONFIG_RELOAD_REFUSED, source=self.config.source, key=key, reason=reason)
        return False

    def _put_in_force(self, config: Config, settings: RunTimeSettings) -> None:
        """Swap every component's settings at once: nothing awaits in here, so no
        connection or delivery sees half of the old configuration and half of the new."""
        self.intake.routing = self.routing = settings.routing
        self.intake.max_received = config.smtp.max_hops
        if self.smtp is not None and settings.smtp is not None:
            self.smtp.reconfigure(settings.smtp, settings.smtp_limits)
        # smtp.listener is restart-only: the tables, so the servers, are the same in number.
        for server, listener in zip(self.smtp_listeners, settings.smtp_listeners, strict=True):
            server.reconfigure(listener.config, listener.limits)
        if self.x400 is not None:
            self.x400.reconfigure(settings.x400, settings.x400_limits)
        for deliverer in (self.smtp_deliverer, self.lmtp_deliverer):
            if deliverer is not None:
                deliverer.reconfigure(settings.client)
        if self.x400_deliverer is not None:
            self.x400_deliverer.reconfigure(settings.x400)
        self.manager.policy = settings.retry
        self.manager.settings = settings.queue
        self.store.lifetime = lifetimes(config)
        if self.reports is not None:
            self.reports.poll_interval = config.queue.poll_interval
        if self.local_submission is not None:
            self.local_submission.pickup.settings = pickup_settings(config)
        if self.journal is not None:
            self.journal.retention = retention(config)
        self.config = config

    def run_background(self) -> list[asyncio.Task[None]]:
        """Start the queue manager and the report generator (and, for the console's charts,
        the metrics' snapshots)."""
        self._tasks = [asyncio.create_task(self.manager.run())]
        if self.x400_deliverer is not None:
            self.x400_deliverer.keep_permanent()
        if self.reports is not None:
            self._tasks.append(asyncio.create_task(self.reports.run()))
        if self.config.console.enabled and self.metrics is not None:
            self._tasks.append(asyncio.create_task(self._snapshots(self.metrics)))
        return self._tasks

    async def _snapshots(self, metrics: Metrics) -> None:
        """A snapshot of the queue every few seconds, which a scrape would otherwise take:
        the console's charts sample it."""
        while True:
            try:
                await metrics.refresh()
            except Exception as exc:  # the charts go stale; the MTA goes on
                events.emit(events.UNEXPECTED_ERROR, component="metrics", error=repr(exc))
            await asyncio.sleep(SNAPSHOT_INTERVAL)

    async def stop(self) -> None:
        if self.console is not None:
            await self.console.close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.local_submission is not None:
            await self.local_submission.close()
        if self.smtp is not None:
            await self.smtp.close()
        for server in self.smtp_listeners:
            await server.close()
        if self.x400 is not None:
            await self.x400.close()
        if self.aftn is not None:
            await self.aftn.close()
        if self.reports is not None:
            self.reports.stop()
        await self.manager.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for deliverer in (self.smtp_deliverer, self.lmtp_deliverer):
            if deliverer is not None:
                await deliverer.close()
        if self.x400_deliverer is not None:
            await self.x400_deliverer.close()
        if self.aftn_deliverer is not None:
            await self.aftn_deliverer.close()
        if self.ats_recorder is not None:
            self.ats_recorder.close()
        await self.store.close()
        if self.metrics is not None:
            self.metrics.stop()
        if self._untrack is not None:
            self._untrack()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)


async def run(config: Config, *, on_ready: Callable[[Service], None] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, reloading on SIGHUP; returns the process exit code."""
    # Others may pass through the data directory (to the maildrop): what the MTA creates
    # there (Maildirs, logs) is owner-only unless it says otherwise.
    os.umask(0o077)
    # SIGHUP's default action would end the process and leave the pid file behind: from
    # the first moment it asks for a reload, done once the service is up.
    # SIGTERM and SIGINT too: one arriving while the service starts stops it once started.
    reload_asked = asyncio.Event()
    flush_asked = asyncio.Event()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reload_asked.set)
    loop.add_signal_handler(signal.SIGUSR1, flush_asked.set)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if config.console.enabled:
        keep_recent_events()
    data_dir = prepare_data_dir(config.server.data_dir)
    lock = RunLock.acquire(data_dir)
    try:
        service = await _start(config, lock)
    except BaseException:
        # A start that failed left nothing half-done (a check after an unclean stop that did
        # not finish keeps the pid, so that the next start checks again): the next start
        # must not report an unclean stop and repair.
        if lock.check_pending:
            lock.release_unclean()
        else:
            lock.release_clean()
        raise
    events.emit(events.SERVICE_STARTED, version=__version__, data_dir=data_dir)
    background = service.run_background()
    if on_ready is not None:
        on_ready(service)
    sdnotify.notify(sdnotify.READY, f"STATUS=Waypost {__version__} serving {data_dir}")
    reloader = asyncio.create_task(reload_when_asked(service, reload_asked))
    flusher = asyncio.create_task(flush_when_asked(service, flush_asked))
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({*background, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    sdnotify.notify(sdnotify.STOPPING, "STATUS=stopping")
    stop_wait.cancel()
    reloader.cancel()
    flusher.cancel()
    await service.stop()
    lock.release_clean()
    events.flush_suppressed()
    events.emit(events.SERVICE_STOPPED)
    return EXIT_OK


async def _start(config: Config, lock: RunLock) -> Service:
    """The check the last stop calls for, the store, the delivery agents and the listeners;
    a ServiceError names what stopped the start."""
    if config.store.backend != "sqlite":
        # PostgreSQL keeps its own data safe across crashes (its WAL); an unclean stop of
        # this node left only leases, which joining the cluster hands back.
        lock.check_pending = False
    elif lock.previous_pid is not None:
        check_after_unclean_stop(database_path(config), lock.previous_pid)
        lock.check_pending = False
    else:
        check_integrity_at_start(database_path(config))
    service = await Service.start(config)
    try:
        await service.start_listeners()
        await service.start_local_submission()
        await service.start_http()
    except ListenError as exc:
        await service.stop()
        events.emit(
            events.LISTEN_FAILED, address=exc.address, listener=exc.listener, reason=exc.reason
        )
        raise ServiceError(str(exc), EXIT_FAILED) from None
    except (OSError, SmtpSetupError) as exc:
        await service.stop()
        raise ServiceError(f"cannot start the listeners: {exc}", EXIT_FAILED) from None
    return service


async def reload_when_asked(service: Service, asked: asyncio.Event) -> None:
    """One reload per SIGHUP (signals arriving during one make one more), told to systemd
    as RELOADING=1 … READY=1 (sd_notify(3); MONOTONIC_USEC for Type=notify-reload)."""
    while True:
        await asked.wait()
        asked.clear()
        sdnotify.notify(sdnotify.RELOADING, sdnotify.monotonic_usec(), "STATUS=reloading")
        try:
            applied = service.reload(reopen_logs=open_logs)
        except Exception as exc:  # the old configuration stays in force; keep serving
            events.emit(events.UNEXPECTED_ERROR, component="reload", error=repr(exc))
            applied = False
        status = "configuration reloaded" if applied else "reload refused, see the log"
        sdnotify.notify(sdnotify.READY, f"STATUS={status}")


async def flush_when_asked(service: Service, asked: asyncio.Event) -> None:
    """SIGUSR1, sent by `waypost queue retry`: what it made due is tried now, though its
    next hop is down or an X.400 peer's open interval runs (Postfix's `postqueue -f`)."""
    while True:
        await asked.wait()
        asked.clear()
        hops = service.manager.forget_back_offs()
        events.emit(events.QUEUE_FLUSH_ASKED, hops=hops)
