"""`waypost serve` as a real process for tests: its configuration file, its JSON event log,
its signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WAIT = 30.0  # generous: how long a test waits for the MTA to do something


class ServeProcess:
    """One `waypost serve -c DIR/waypost.toml`; every path in the configuration is absolute,
    and the JSON event log is DIR/log/events.json."""

    def __init__(self, directory: Path, toml: str, *, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.config = directory / "waypost.toml"
        self.log = directory / "log" / "events.json"
        self.data_dir = directory / "data"
        self.env = {**os.environ, **(env or {})}
        self.write_config(toml)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, toml: str) -> None:
        """The [server] and [log] sections, then `toml` (which must not repeat them)."""
        head = (
            f'[server]\nhostname = "reload.test"\ndata_dir = "{self.data_dir}"\n'
            f'[log]\njson_file = "{self.log}"\n'
        )
        self.config.write_text(head + toml)

    def start(self) -> None:
        command = [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(self.config)]
        self.proc = subprocess.Popen(
            command, cwd=self.directory, env=self.env, stderr=subprocess.PIPE
        )
        self.wait_for("service-started")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "waypost.cli.main", *args, "-c", str(self.config)]
        return subprocess.run(
            command,
            check=False,
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def reload(self, toml: str) -> dict[str, Any]:
        """Write a new configuration, SIGHUP, and wait for the outcome: the event
        config-reloaded or config-reload-refused (its JSON record)."""
        seen = len(self.events())
        self.write_config(toml)
        self.signal(signal.SIGHUP)
        return self.wait_for(
            lambda e: e["name"] in ("config-reloaded", "config-reload-refused"), after=seen
        )

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr = err.decode(errors="replace")
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def events(self, log: Path | None = None) -> list[dict[str, Any]]:
        path = log or self.log
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(
        self,
        what: str | Callable[[dict[str, Any]], bool],
        *,
        after: int = 0,
        log: Path | None = None,
    ) -> dict[str, Any]:
        """The first event (past the first `after` of the log) with that name or for which
        `what` is true; fails if the process ends or none comes within WAIT."""
        match = (lambda e: e["name"] == what) if isinstance(what, str) else what
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for event in self.events(log)[after:]:
                if match(event):
                    return event
            if self.proc is not None and self.proc.poll() is not None:
                code = self.stop()
                raise AssertionError(f"serve ended ({code}) waiting for {what}: {self.stderr}")
            time.sleep(0.05)
        raise AssertionError(f"no event {what} within {WAIT} s: {self.events(log)[after:]}")
