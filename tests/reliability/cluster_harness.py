"""Kill-under-load for a cluster: several `waypost serve` nodes on one PostgreSQL MTA
database, SIGKILLed at random moments and restarted (one of them left down past the node
timeout, so that the others take its work over), with delivery accounting as in harness.py.

    smtplib (numbered, to any node) --SMTP--> N1 | N2 | N3 --SMTP--> smtp-sink
    S1, S2 (X.400, numbered) ----P1---> N1, N2 ----P1 from any node----> R

The nodes share one X.400 identity (M-MTA): the cluster is one MTA to its peers. At the end
every acknowledged message must be at its sink, and the shared queue empty; duplicates are
counted (at-least-once). A replica promotion run (`run_failover`) kills the PostgreSQL
primary under load instead, promotes its synchronous standby, and accounts the same way.
"""

from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    PEER_TIMERS,
    R_DOMAIN,
    SMTP_DOMAIN,
    SMTP_SINK,
    Serve,
    Sink,
    SmtpSender,
    Tally,
    X400Submitter,
    free_port,
    r_config,
    s_config,
    tally_rows,
    tool,
    wait_for,
    x400_delivered,
)
from pg_server import PgServer

from waypost.store.postgresql.database import PgDatabase

HEARTBEAT, NODE_TIMEOUT = 0.5, 3.0


def node_config(name: str, dsn: str, smtp_port: int, x400_port: int, r: int, sink: int) -> str:
    return (
        f'[server]\nhostname = "{name}.m.test"\ndata_dir = "data"\n'
        "[queue]\npoll_interval = 0.1\nmin_backoff = 0.5\nmax_backoff = 1\n"
        f'[store]\nbackend = "postgresql"\ndsn = "{dsn}"\nlease_seconds = 30\n'
        f'[cluster]\nnode = "{name}"\nheartbeat_interval = {HEARTBEAT}\n'
        f"node_timeout = {NODE_TIMEOUT}\n"
        "[smtp_client]\nconnect_timeout = 2\ncommand_timeout = 5\ndata_timeout = 5\n"
        "connection_cache_time = 1\n"
        '[log]\njson_file = "data/events.jsonl"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "M-MTA"\n'
        'global_domain = "/C=GB/ADMD= /PRMD=M/"\n'
        '[[x400.peer]]\nname = "S-MTA"\naddress = "127.0.0.1:1"\n'
        'peer_password = "secret-s"\nour_password = "secret-m"\n' + PEER_TIMERS + "\n"
        f'[[x400.peer]]\nname = "R-MTA"\naddress = "127.0.0.1:{r}"\n'
        'our_password = "secret-m"\npeer_password = "secret-r"\n' + PEER_TIMERS + "\n"
        f'[[route]]\nmatch = "{SMTP_DOMAIN}"\nnext_hop = "smtp:[127.0.0.1]:{sink}"\n'
        f'[[route]]\nmatch = "{R_DOMAIN}"\nnext_hop = "x400:R-MTA"\n'
    )


@dataclass
class ClusterResult:
    smtp: Tally
    x400: Tally
    kills: collections.Counter[str]
    node_lost: int
    takeovers: int
    failovers: int
    reconnects: int
    client_retries: int
    delivered_by: dict[str, int]
    p1_in: dict[str, int]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [
            f"kills: {dict(self.kills)}; nodes declared lost {self.node_lost} "
            f"({self.takeovers} recipients taken over); database failovers {self.failovers}, "
            f"reconnections to it {self.reconnects}; "
            f"deliveries by node {self.delivered_by}; {self.seconds:.1f} s",
        ]
        return "\n".join(rows + tally_rows(self.smtp, self.x400) + self.notes)


def _queued(dsn: str) -> int:
    try:
        db = PgDatabase.connect(dsn, create_schema=False)
    except Exception:
        return -1
    try:
        return int(db.conn.execute("SELECT count(*) FROM recipients").fetchone()[0])
    except Exception:
        return -1
    finally:
        db.close()


def run_cluster_kills(
    root: Path,
    *,
    seed: int,
    nodes: int,
    smtp_messages: int,
    x400_messages: int,
    kills: int,
    kill_gap: tuple[float, float] = (1.0, 2.5),
    failover: bool = False,
    sink_delay: int = 0,
    drain_timeout: float = 90.0,
) -> ClusterResult:
    """The run: `kills` SIGKILLs of random nodes, the first of them left down past the node
    timeout; with `failover`, the database primary is killed too, halfway, and its
    synchronous replica promoted (the nodes' connection string names both). `sink_delay`
    makes every SMTP delivery last that many seconds, so that kills find leases held."""
    sink_binary = tool(SMTP_SINK)
    assert sink_binary, f"{SMTP_SINK} is not installed"
    began = time.monotonic()
    rng = random.Random(seed)
    primary = PgServer.initdb()
    replica = primary.replica(synchronous=True) if failover else None
    servers = [primary, *([replica] if replica else [])]
    dsn = (
        f"host=127.0.0.1,127.0.0.1 port={primary.port},{replica.port} user=waypost "
        "dbname=postgres target_session_attrs=read-write"
        if replica
        else primary.dsn()
    )
    sink = Sink(root / "sink", sink_binary, delay=sink_delay)
    r_x400 = free_port()
    ports = [(free_port(), free_port()) for _ in range(nodes)]
    members = [
        Serve(
            root / f"n{i + 1}",
            f"n{i + 1}",
            node_config(f"n{i + 1}", dsn, smtp, x400, r_x400, sink.port),
            smtp,
        )
        for i, (smtp, x400) in enumerate(ports)
    ]
    r = Serve(root / "r", "R", r_config(r_x400), r_x400)
    # X.400 senders bind to different nodes: associations come in to any node.
    senders_x400 = []
    for i in range(min(2, nodes)):
        port = free_port()
        senders_x400.append(
            Serve(root / f"s{i + 1}", f"S{i + 1}", s_config(port, ports[i][1]), port)
        )
    smtp_tally, x400_tally = Tally(), Tally()
    killed: collections.Counter[str] = collections.Counter()
    failovers = 0
    plan = [rng.randrange(nodes) for _ in range(kills)]
    gaps = [rng.uniform(*kill_gap) for _ in plan]
    # The first victim stays down until the others declare it lost and take its work.
    downtimes = [NODE_TIMEOUT + 2.0] + [rng.uniform(0.0, 0.5) for _ in plan[1:]]
    span = sum(gaps) + sum(downtimes) + 1.0 * len(plan) + 2.0
    senders: list[SmtpSender] = []
    try:
        sink.start()
        r.start()
        for member in members:
            member.start()
        for s in senders_x400:
            s.start()
        smtp_ports = [smtp for smtp, _ in ports]
        per_sender = smtp_messages // nodes
        senders = [
            SmtpSender(
                smtp_ports,
                per_sender,
                smtp_tally,
                span / max(per_sender, 1),
                name=f"{i}-",
                first=i,
            )
            for i in range(nodes)
        ]
        each = x400_messages // len(senders_x400)
        batches = max(1, -(-each // 5))
        submitters = [
            X400Submitter(s, each, x400_tally, 5, span / batches, first=i * 100_000)
            for i, s in enumerate(senders_x400)
        ]
        for sender in senders:
            sender.start()
        for submitter in submitters:
            submitter.start()
        for n, (victim, gap, downtime) in enumerate(zip(plan, gaps, downtimes, strict=True)):
            time.sleep(gap)
            if failover and replica is not None and n == len(plan) // 2:
                primary.kill()  # the database's machine dies; its replica takes over
                replica.promote()
                failovers += 1
            member = members[victim]
            member.kill()
            killed[member.name] += 1
            time.sleep(downtime)
            member.start()
        for sender in senders:
            sender.join(timeout=drain_timeout)
        for submitter in submitters:
            submitter.join(timeout=drain_timeout)
        assert not any(t.is_alive() for t in [*senders, *submitters])
        for submitter in submitters:
            if submitter.error is not None:
                raise submitter.error

        def acknowledged() -> set[str]:
            return set().union(*(submitter.acknowledged() for submitter in submitters))

        def drained() -> bool:
            x400_tally.acked = acknowledged()
            done = len(x400_tally.acked) == each * len(submitters)
            return done and all(s.queued() == 0 for s in senders_x400) and _queued(dsn) == 0

        notes: list[str] = []
        try:
            wait_for(drained, drain_timeout, "the shared queue to drain")
        except AssertionError as exc:
            notes.append(f"NOT DRAINED: {exc}; {_queued(dsn)} recipients queued")
        x400_tally.acked = acknowledged()
        x400_tally.sent = each * len(submitters)
        smtp_tally.delivered = collections.Counter(
            {k: n for k, n in sink.message_ids().items() if k.startswith("<smtp-")}
        )
        x400_tally.delivered = x400_delivered(r.root / "data" / "x400store")
    finally:
        for proc in [*senders_x400, *members, r]:
            proc.stop()
        sink.stop()
        for server in servers:
            server.remove()
    lost_events = [e for m in members for e in m.events(1222)]
    delivered_by = {m.name: len(m.events(1500)) for m in members}
    p1_in = {
        m.name: sum(1 for e in m.events(1420) if e["fields"].get("source") == "p1") for m in members
    }
    notes.append(f"messages arrived over P1, per node: {p1_in}")
    for proc in [*members, r, *senders_x400]:
        if "Traceback" in proc.stderr():
            notes.append(f"{proc.name}: a Traceback in {proc.log_path}")
    notes.append(f"smtp clients: {sum(t.failures for t in senders)} attempts retried elsewhere")
    return ClusterResult(
        smtp=smtp_tally,
        x400=x400_tally,
        kills=killed,
        node_lost=len(lost_events),
        takeovers=sum(int(e["fields"]["count"]) for e in lost_events),
        failovers=failovers,
        reconnects=sum(len(m.events(1206)) for m in members),
        client_retries=sum(t.failures for t in senders),
        delivered_by=delivered_by,
        p1_in=p1_in,
        seconds=time.monotonic() - began,
        notes=notes,
    )
