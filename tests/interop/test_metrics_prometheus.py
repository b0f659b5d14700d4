"""The metrics endpoint scraped by a real Prometheus server (Debian's `prometheus`): while
smtp-source sends to a next hop that is down, Prometheus sees the queue fill; once the
next hop (smtp-sink) is up, it sees the queue drain and the deliveries counted."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import free_port
from interop_helpers import SMTP_SOURCE, SmtpSink, Waypost, require_tool, wait_for

pytestmark = pytest.mark.interop

MESSAGES = 200


class Prometheus:
    """`prometheus` scraping one target every second, with its data in a temporary
    directory, stopped by its PID."""

    def __init__(self, root: Path, target: str) -> None:
        self.binary = require_tool("prometheus")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: waypost\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = (root / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )

    def query(self, expression: str) -> list[dict[str, object]]:
        """The result vector of an instant query (`/api/v1/query`)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expression}
        )
        with urllib.request.urlopen(url, timeout=5) as answer:
            doc = json.loads(answer.read())
        assert doc["status"] == "success", doc
        result: list[dict[str, object]] = doc["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        """The one value of a query whose result is one sample, or None (no such series
        yet, or Prometheus not answering yet)."""
        try:
            result = self.query(expression)
        except OSError:
            return None
        if len(result) != 1:
            return None
        sample = result[0]["value"]
        assert isinstance(sample, list)
        return float(sample[1])

    def target_up(self) -> bool:
        return self.value('up{job="waypost"}') == 1.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        started.append(Prometheus(tmp_path / "prometheus", target))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_prometheus_sees_the_queue_fill_and_drain(
    make_waypost: Callable[..., Waypost],
    prometheus: Callable[[str], Prometheus],
    tmp_path: Path,
) -> None:
    source = require_tool(SMTP_SOURCE)
    sink = SmtpSink(tmp_path / "sink")  # not started yet: the next hop is down
    metrics_port = free_port()
    wp = make_waypost(
        settings={"metrics": {"enabled": True, "listen": f"127.0.0.1:{metrics_port}"}},
        routes=[("sink.example", sink.next_hop)],
    )
    server = prometheus(f"127.0.0.1:{metrics_port}")
    wait_for(server.target_up, 60, "Prometheus scraping Waypost")

    subprocess.run(
        [
            source,
            "-s",
            "10",
            "-m",
            str(MESSAGES),
            "-l",
            "1024",
            "-f",
            "sender@source.example",
            "-t",
            "rcpt@sink.example",
            f"127.0.0.1:{wp.port}",
        ],
        check=True,
        timeout=120,
    )
    hop = f'next_hop="{sink.next_hop}"'
    queued = "sum(waypost_queue_recipients{" + hop + "})"
    wait_for(lambda: (server.value(queued) or 0) >= MESSAGES, 30, "the queue seen full")
    received = server.value('sum(waypost_messages_received_total{source="smtp"})')
    assert received == MESSAGES
    assert (server.value("sum(waypost_deferred_total)") or 0) >= 1
    assert server.value("waypost_next_hops_down") == 1
    oldest = "waypost_queue_oldest_age_seconds{" + hop + "}"
    assert (server.value(oldest) or 0) > 0

    sink.start()
    try:
        # The hop is probed again within max_backoff (2 s), then the queue drains.
        wait_for(lambda: server.value(queued) == 0, 60, "the queue seen empty")
        delivered = 'sum(waypost_delivered_total{transport="smtp"})'
        wait_for(lambda: server.value(delivered) == MESSAGES, 30, "every delivery counted")
        assert server.value("waypost_next_hops_down") == 0
        # Prometheus holds the whole story: full, then empty, within the last minutes.
        peak = server.value(f"max_over_time({queued}[5m:1s])")
        assert peak is not None and peak >= MESSAGES
        moved = 'sum(waypost_delivered_bytes_total{transport="smtp"})'
        assert (server.value(moved) or 0) >= MESSAGES * 1024
        enqueued = server.value("waypost_store_enqueue_seconds_count")
        assert enqueued == MESSAGES
    finally:
        sink.stop()
    assert len(sink.messages()) == MESSAGES
