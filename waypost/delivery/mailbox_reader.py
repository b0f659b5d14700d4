"""Reading back what local delivery wrote: the Maildirs (maildir.py) and the X.400
store's P1 files (x400_store.py), for `waypost mailbox`. Read-only; files still in tmp/
are not delivered yet and are not shown."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from waypost.address import parse_oraddress
from waypost.delivery.x400_store import mailbox_name

MAILDIR, X400 = "maildir", "x400"
FOLDERS = ("new", "cur")


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One mailbox directory: a Maildir (named by local part) or an X.400 store mailbox."""

    kind: str
    name: str
    path: Path

    def files(self) -> list[StoredFile]:
        """Its delivered files, oldest first (Maildir names begin with the delivery time)."""
        found = []
        for folder in FOLDERS:
            try:
                entries = list(os.scandir(self.path / folder))
            except OSError:
                continue  # a mailbox without cur/ yet, or one being removed
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
                found.append(
                    StoredFile(self, folder, Path(entry.path), stat.st_size, stat.st_mtime)
                )
        return sorted(found, key=lambda f: (f.mtime, f.id))


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One delivered message (or X.400 report) file."""

    mailbox: Mailbox
    folder: str
    path: Path
    size: int
    mtime: float

    @property
    def id(self) -> str:
        """Maildir's unique name: the file name without the `:2,` flags a reader adds."""
        return self.path.name.split(":", 1)[0]


class Stores:
    """The two local stores of one configuration."""

    def __init__(self, maildir_root: Path, x400_root: Path) -> None:
        self.roots = ((MAILDIR, maildir_root), (X400, x400_root))

    def mailboxes(self) -> list[Mailbox]:
        found = []
        for kind, root in self.roots:
            try:
                entries = sorted(os.scandir(root), key=lambda e: e.name)
            except OSError:
                continue  # nothing delivered there yet
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    found.append(Mailbox(kind, entry.name, Path(entry.path)))
        return found

    def mailbox(self, name: str) -> Mailbox | None:
        """A mailbox by its directory name, a local part (any case) or an O/R address."""
        boxes = self.mailboxes()
        for box in boxes:
            if box.name == name or (box.kind == MAILDIR and box.name == name.lower()):
                return box
        if name.startswith("/") or ";" in name:
            try:
                wanted = mailbox_name(str(parse_oraddress(name)))
            except ValueError:
                return None
            return next((b for b in boxes if b.kind == X400 and b.name == wanted), None)
        return None

    def find(self, ident: str) -> StoredFile | None:
        """A delivered file by its unique name (`mailbox list` shows it) in any mailbox."""
        wanted = ident.split(":", 1)[0]
        if not wanted or "/" in wanted or wanted.startswith("."):
            return None  # a name, never a path out of the mailbox
        for box in self.mailboxes():
            for folder in FOLDERS:
                directory = box.path / folder
                for candidate in (directory / wanted, *directory.glob(f"{_glob_safe(wanted)}:*")):
                    if candidate.is_file():
                        stat = candidate.stat()
                        return StoredFile(box, folder, candidate, stat.st_size, stat.st_mtime)
        return None


def _glob_safe(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
