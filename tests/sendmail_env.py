"""A Waypost for the sendmail tests: its files where an unprivileged user can reach them, a
`serve` process run as the test's user, and `waypost-sendmail`/`mailq` run as another."""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
UNPRIVILEGED = "nobody"


@cache
def unprivileged_command() -> tuple[str, ...]:
    """How to start Python as a user who is neither root nor the MTA's (the MTA runs as
    the test's user). As root: `setpriv` to nobody, with an interpreter nobody may run
    (the test's own, else the system's of the same version with this environment's
    packages). As anybody else: that user already is unprivileged."""
    if os.geteuid() != 0:
        return (sys.executable,)
    user = pwd.getpwnam(UNPRIVILEGED)
    drop = (
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "env",
        f"HOME={tempfile.gettempdir()}",
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [(sys.executable, str(REPOSITORY))] + [
        (python, str(public_code()))
        for python in (shutil.which(version), f"/usr/bin/{version}", f"/usr/local/bin/{version}")
        if python and os.path.exists(python)
    ]
    for python, path in candidates:
        command = (*drop, f"PYTHONPATH={path}", python)
        probe = subprocess.run(  # noqa: PLW1510 - the exit code is the answer
            [*command, "-c", "import msgspec, waypost.cli.sendmail_cmd"], capture_output=True
        )
        if probe.returncode == 0:
            return command
    raise RuntimeError(f"no Python interpreter that {UNPRIVILEGED} may run with Waypost")


# What `waypost-sendmail` imports from this environment's site-packages.
THIRD_PARTY = ("msgspec", "dns", "typing_extensions", "pybase64")


@cache
def public_code() -> Path:
    """A copy of Waypost and of the packages it needs in a directory anyone may read: the
    checkout and the virtual environment may be under a directory only their owner may
    enter (a home directory, a private temporary directory), which the unprivileged user's
    interpreter could not import from."""
    public = Path(tempfile.mkdtemp(prefix="waypost-code-"))
    public.chmod(0o755)
    atexit.register(shutil.rmtree, public, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPOSITORY / "waypost", public / "waypost", ignore=ignore)
    packages = Path(sysconfig.get_paths()["purelib"])
    platform = Path(sysconfig.get_paths()["platlib"])
    for name in THIRD_PARTY:
        for where in (packages, platform):
            if (where / name).is_dir():
                shutil.copytree(where / name, public / name, ignore=ignore, dirs_exist_ok=True)
            elif (where / f"{name}.py").is_file():
                shutil.copy2(where / f"{name}.py", public / f"{name}.py")
    for path in public.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644 | (path.stat().st_mode & 0o111))
    return public


def unprivileged_uid() -> int:
    return os.geteuid() if os.geteuid() != 0 else pwd.getpwnam(UNPRIVILEGED).pw_uid


@dataclass
class Mta:
    """A configuration, data directory and (when started) `waypost serve`."""

    root: Path
    config: Path
    data: Path
    proc: subprocess.Popen[str] | None = None
    logs: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(self.config)],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        )
        wait_for((self.data / "public" / "showq").exists, "the MTA to start")

    def stop(self) -> str:
        """SIGTERM; the run's stderr (a serve that does not stop is killed)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        self.logs.append(err)
        assert proc.returncode == 0, err
        return err

    def sendmail(
        self, *args: str, stdin: bytes = b"", config: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """`waypost-sendmail ARGS` as the unprivileged user."""
        options = ("-C", str(self.config)) if config else ()
        return subprocess.run(  # noqa: PLW1510 - callers assert on the exit code
            [*unprivileged_command(), "-m", "waypost.cli.sendmail_cmd", *options, *args],
            input=stdin,
            capture_output=True,
            cwd="/",
            timeout=60,
        )

    def mailq(self, *, unprivileged: bool = True) -> subprocess.CompletedProcess[str]:
        """`waypost-mailq`, as the unprivileged user or as the test's (the MTA's) user."""
        python = unprivileged_command() if unprivileged else (sys.executable,)
        code = "import sys; from waypost.cli.sendmail_cmd import mailq_main; sys.exit(mailq_main())"
        return subprocess.run(  # noqa: PLW1510 - callers assert on the exit code
            [*python, "-c", code, "-C", str(self.config)],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        )

    def mailbox(self, user: str) -> list[bytes]:
        new = self.data / "maildir" / user / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []


def make_mta(extra: str = "") -> Mta:
    """In a directory of its own under the system's temporary directory, not pytest's: that
    one is the test user's only, and the unprivileged user must reach the data directory."""
    root = Path(tempfile.mkdtemp(prefix="waypost-sendmail-"))
    root.chmod(0o755)
    data = root / "data"
    config = root / "waypost.toml"
    config.write_text(
        f'[server]\nhostname = "mx.test"\ndata_dir = "{data}"\n'
        "[smtp]\nlisten = []\nmax_message_size = 4096\nmax_recipients = 5\n"
        '[x400]\nlisten = []\n[local]\ndomains = ["localhost", "mx.test"]\n'
        "[queue]\npoll_interval = 0.2\nmin_backoff = 60\nmax_backoff = 120\n" + extra
    )
    config.chmod(0o644)
    return Mta(root=root, config=config, data=data)


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
