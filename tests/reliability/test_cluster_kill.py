"""SIGKILL of cluster nodes under load, and the death of the database's primary: every
acknowledged message reaches its sink, the shared queue drains, duplicates are counted.

Three `waypost serve` nodes share one PostgreSQL MTA database; SMTP clients send to any
node (the next one when theirs is down) and two X.400 MTAs bind to two of them; nodes are
killed at random moments, the first one long enough for the others to declare it lost and
take its leases over. `cluster_harness.py` has the topology.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_harness import ClusterResult, run_cluster_kills
from harness import SMTP_SINK, tool
from pg_server import pg_bin

pytestmark = pytest.mark.interop


def _require() -> None:
    if not tool(SMTP_SINK):
        pytest.skip(f"{SMTP_SINK} is not installed (scripts/install-system-tools.sh)")
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (scripts/install-system-tools.sh)")


def _nothing_lost(result: ClusterResult, x400_messages: int) -> None:
    for name, tally in (("smtp", result.smtp), ("x400", result.x400)):
        assert tally.acked, f"{name}: nothing was acknowledged"
        assert tally.lost == [], f"{name}: {len(tally.lost)} acknowledged messages lost"
    assert len(result.x400.acked) == x400_messages, result.table()
    assert not any(n.startswith("NOT DRAINED") for n in result.notes), result.table()
    assert not any("Traceback" in n for n in result.notes), result.table()


@pytest.mark.timeout(300)
def test_nodes_killed_under_load_lose_nothing(tmp_path: Path) -> None:
    _require()
    # Each SMTP delivery lasts a second (smtp-sink -w 1): the nodes hold leases when killed.
    result = run_cluster_kills(
        tmp_path, seed=1313, nodes=3, smtp_messages=240, x400_messages=60, kills=4,
        sink_delay=1,
    )  # fmt: skip
    print("\n" + result.table())
    assert sum(result.kills.values()) == 4
    # The node left down past the timeout was declared lost by another, which took over
    # the recipients it was delivering.
    assert result.node_lost >= 1, result.table()
    assert result.takeovers >= 1, result.table()
    assert result.client_retries > 0, "no client ever found its node down"
    # The work was shared: every node delivered; X.400 came in to two of them.
    assert all(count > 0 for count in result.delivered_by.values()), result.table()
    assert sum(1 for count in result.p1_in.values() if count) == 2, result.table()
    _nothing_lost(result, 60)


@pytest.mark.timeout(300)
def test_the_database_fails_over_to_its_replica_under_load(tmp_path: Path) -> None:
    _require()
    result = run_cluster_kills(
        tmp_path, seed=2727, nodes=2, smtp_messages=160, x400_messages=40, kills=2,
        failover=True,
    )  # fmt: skip
    print("\n" + result.table())
    assert result.failovers == 1
    # The nodes found the promoted replica by themselves (target_session_attrs=read-write).
    assert result.reconnects >= 1, result.table()
    _nothing_lost(result, 40)
