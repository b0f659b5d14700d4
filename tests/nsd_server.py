"""A real authoritative DNS server for the tests: NSD (Debian's `nsd`), serving zone files
on a loopback port as an ordinary process in the foreground, stopped by its PID."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
from helpers import free_port

NSD = shutil.which("nsd") or "/usr/sbin/nsd"


def nsd_available() -> bool:
    return Path(NSD).exists()


class NsdServer:
    """NSD authoritative for `zones` (origin → zone file text). A zone whose text is None is
    configured without a file: NSD answers SERVFAIL for it, as for any zone it could not load."""

    def __init__(self, directory: Path, zones: dict[str, str | None]) -> None:
        self.directory = directory
        self.zones = zones
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        zone_blocks = []
        for origin, text in self.zones.items():
            zone_file = f"{origin.rstrip('.') or 'root'}.zone"
            if text is not None:
                (d / zone_file).write_text(text)
            zone_blocks.append(f'zone:\n    name: "{origin}"\n    zonefile: "{zone_file}"\n')
        conf = d / "nsd.conf"
        conf.write_text(
            "server:\n"
            f"    ip-address: 127.0.0.1@{self.port}\n"
            f"    port: {self.port}\n"
            '    username: ""\n'
            '    chroot: ""\n'
            '    database: ""\n'
            f'    zonesdir: "{d}"\n'
            f'    zonelistfile: "{d}/zone.list"\n'
            f'    xfrdfile: "{d}/xfrd.state"\n'
            f'    xfrdir: "{d}"\n'
            f'    pidfile: "{d}/nsd.pid"\n'
            f'    logfile: "{d}/nsd.log"\n'
            "    server-count: 1\n"
            "    hide-version: yes\n"
            "remote-control:\n"
            "    control-enable: no\n" + "".join(zone_blocks)
        )
        self.proc = subprocess.Popen([NSD, "-d", "-c", str(conf)], stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        origin = next(origin for origin, text in self.zones.items() if text is not None)
        query = dns.message.make_query(origin, "SOA")
        for _ in range(100):  # bounded: 100 tries of at most 0.2 s
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"nsd exited: {self.log()}")
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nsd did not answer on port {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # NSD stops its server processes and exits on SIGTERM
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        log = self.directory / "nsd.log"
        return log.read_text() if log.exists() else ""
