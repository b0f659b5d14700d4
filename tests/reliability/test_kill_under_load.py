"""SIGKILL under load: every acknowledged message reaches its sink; duplicates are counted.

SMTP clients and an X.400 sender push numbered messages through a middle Waypost (M) to
smtp-sink and to a receiving Waypost (R); M is killed with SIGKILL at random moments and
restarted, and R and the smtp-sink are killed once each mid-transfer. At-least-once is
acceptable; loss is not. `bench/soak.py` runs the same thing for longer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import SMTP_SINK, run_kill_under_load, tool

pytestmark = pytest.mark.interop


@pytest.mark.timeout(240)
def test_acknowledged_messages_survive_sigkill_of_relay_receiver_and_sink(tmp_path: Path) -> None:
    if not tool(SMTP_SINK):
        pytest.skip(f"{SMTP_SINK} is not installed (scripts/install-system-tools.sh installs it)")
    result = run_kill_under_load(
        tmp_path,
        seed=4242,
        smtp_messages=200,
        x400_messages=100,
        m_kills=3,
        r_kills=1,
        sink_kills=1,
        kill_gap=(1.0, 2.5),
        x400_batch=5,
        drain_timeout=60,
    )
    print("\n" + result.table())
    assert result.kills == {"M": 3, "R": 1, "sink": 1}
    assert result.under_load_kills == 3, "every kill of M should land while clients send"
    assert result.mid_flow_kills["M"] >= 1, "no kill of M landed while it held messages"
    assert result.client_retries > 0, "the SMTP client never noticed M was down"
    for name, tally in (("smtp", result.smtp), ("x400", result.x400)):
        assert tally.acked, f"{name}: nothing was acknowledged"
        assert tally.lost == [], f"{name}: {len(tally.lost)} acknowledged messages lost"
    # Every X.400 message was confirmed by M in the end (S retries until it is).
    assert len(result.x400.acked) == 100, result.table()
    assert not any(n.startswith("NOT DRAINED") for n in result.notes), result.table()
