"""Everything `waypost serve` refuses to start on, found without starting anything: the
configuration, the files it names and the directories Waypost writes in.

`serve` and `waypost config check` both call `check_configuration`, so that a file the
check passes is one `serve` starts on (a port another process holds is the exception: that
is known only by binding it). Nothing here creates or changes a file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from waypost.config import Config, ConfigError, read_config
from waypost.config.convert import schema_order
from waypost.config.schema import SECTIONS
from waypost.setup.amhs import amhs_problems
from waypost.setup.mixer import mixer_problems
from waypost.setup.smtp import load_smtp_files


def check_configuration(
    path: str | None, *, places: bool = True
) -> tuple[Config | None, list[ConfigError]]:
    """The configuration at `path` (None: the embedded defaults) and every problem that
    would stop `serve`, in the order of the keys; the Config is None only when the file
    cannot be read as TOML. A key that is bad takes its default for the other checks, so
    that one problem hides no other.

    With `places`, the directories and files Waypost writes in are looked at too; `serve`
    leaves them to its start-up (`prepare_data_dir`: event 1005, exit code 76).
    """
    config, errors = read_config(path)
    if config is None:
        return None, errors
    found = [
        *(_places(config) if places else []),
        *load_smtp_files(config)[1],
        *mixer_problems(config),
        *amhs_problems(config),
    ]
    errors += [ConfigError(config.source, key, reason) for key, reason in found]
    return config, sorted(errors, key=lambda error: schema_order(error.key, SECTIONS))


def directory_problem(path: str) -> str | None:
    """Why Waypost could not write in the directory `path`, making it and its parents as
    needed (`it is not a directory`); None when it could. It only looks: nothing is made."""
    target = Path(path)
    existing = target
    while True:
        try:
            info = existing.stat()
            break
        except (FileNotFoundError, NotADirectoryError):
            if existing.parent == existing:
                return "it cannot be made: no parent directory exists"
            existing = existing.parent
        except OSError as exc:
            return f"it cannot be looked at: {exc.strerror or exc}"
    it, made = ("it", "") if existing == target else (str(existing), "it cannot be made: ")
    if not stat.S_ISDIR(info.st_mode):
        return f"{made}{it} is not a directory"
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"{made}{it} is on a read-only file system"
    if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        return f"{made}uid {os.geteuid()} may not write in {it}"
    return None


def file_problem(path: str) -> str | None:
    """Why Waypost could not write the file `path` (an existing one kept); None if it could."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # made in its directory, which is checked on its own
    except OSError as exc:
        return f"it cannot be looked at: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"uid {os.geteuid()} may not write it"
    return None


def _places(config: Config) -> list[tuple[str, str]]:
    """(key, reason) for each place Waypost writes in that it could not: the data directory
    (made at start), the directories it makes when it first needs them, and the database's
    and the event log's files and directories."""
    data_dir = config.server.data_dir
    problems: list[tuple[str, str]] = []
    bad: list[str] = []

    def look(key: str, path: str, problem: str | None) -> None:
        if problem is not None and not any(_under(path, b) for b in bad):
            problems.append((key, f"{path} cannot be used: {problem}"))
            bad.append(path)

    look("server.data_dir", data_dir, directory_problem(data_dir))
    store = config.store.path
    store_dir = os.path.dirname(store)
    if store_dir != data_dir and not os.path.isdir(store_dir):
        # Only the data directory is made at start: SQLite makes no directory.
        look("store.path", store_dir, "it does not exist (only server.data_dir is made at start)")
    look("store.path", store_dir, directory_problem(store_dir))
    look("store.path", store, file_problem(store))
    look("local.maildir", config.local.maildir, directory_problem(config.local.maildir))
    look("local.x400_store", config.local.x400_store, directory_problem(config.local.x400_store))
    if config.log.json_file:
        log = config.log.json_file
        look("log.json_file", os.path.dirname(log), directory_problem(os.path.dirname(log)))
        look("log.json_file", log, file_problem(log))
    return problems


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")
