"""Instructions a benchmarked process executes over an interval, counted by valgrind's
callgrind: the same count for the same work however busy the machine is.

A process started with `command()` runs with counting off; `Counter.start()` turns it on
and `Counter.stop()` off, and returns the instructions (Ir) executed in user space
between the two, every thread included (system calls are the kernel's and not counted).
Under callgrind a process runs some fifty times slower: timeouts of its peers must allow
for it, and its CPU seconds mean nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CALLGRIND_START_TIMEOUT = 300.0  # seconds for a Waypost under callgrind to listen


def available() -> str | None:
    """Why instructions cannot be counted here, or None when they can."""
    missing = [t for t in ("valgrind", "callgrind_control") if shutil.which(t) is None]
    return f"{' and '.join(missing)} not found (Debian package valgrind)" if missing else None


def command(out: Path) -> list[str]:
    """The prefix that runs a command under callgrind, counting off, dumps into `out`.N."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


class Counter:
    """Counting in one process started with `command(out)`."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.pid)], check=True, capture_output=True)

    def start(self) -> None:
        self._control("--instr=on")

    def stop(self) -> int:
        """Counting off; the instructions since `start` (a dump is written to read them)."""
        self._control("--instr=off")
        before = set(self.out.parent.glob(f"{self.out.name}.*"))
        self._control("--dump")
        dumps = set(self.out.parent.glob(f"{self.out.name}.*")) - before
        if len(dumps) != 1:
            raise SystemExit(f"callgrind wrote {len(dumps)} dumps for {self.pid}, not one")
        return _totals(dumps.pop())


def _totals(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"{dump}: no totals line")
