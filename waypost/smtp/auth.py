"""SMTP AUTH users: a file of `user:hash` lines, hashed with salted scrypt (standard library).

    alice:scrypt$16384$8$1$<salt base64>$<hash base64>

`waypost password-hash USER` writes such a line. Passwords never appear in
logs or events; a wrong password and an unknown user look the same to a peer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

N, R, P = 16384, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32


class UsersFileError(ValueError):
    """The users file cannot be read or has a bad line (the message names the line)."""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=HASH_BYTES)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


@dataclass(frozen=True, slots=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> _Hash:
        scheme, n, r, p, salt, digest = text.split("$")
        if scheme != "scrypt":
            raise ValueError(f"unknown scheme {scheme!r}")
        parsed = cls(
            int(n),
            int(r),
            int(p),
            base64.b64decode(salt, validate=True),
            base64.b64decode(digest, validate=True),
        )
        if not (2 <= parsed.n <= 2**20 and 1 <= parsed.r <= 32 and 1 <= parsed.p <= 16):
            raise ValueError("scrypt parameters out of range")
        return parsed

    def matches(self, password: str) -> bool:
        candidate = hashlib.scrypt(
            password.encode(),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            dklen=len(self.digest),
            maxmem=2**27,
        )
        return hmac.compare_digest(candidate, self.digest)


# Checked against for unknown users, so that timing does not tell them apart.
_DUMMY = _Hash.parse(hash_password("unused", salt=b"\0" * SALT_BYTES))


class AuthUsers:
    """The users that may authenticate; `verify` is slow on purpose (run it off the loop)."""

    def __init__(self, users: dict[str, _Hash]) -> None:
        self._users = users

    @classmethod
    def load(cls, path: str | Path) -> AuthUsers:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsersFileError(f"{path}: cannot read: {exc}") from None
        users: dict[str, _Hash] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise UsersFileError(f"{path}:{number}: expected user:hash")
            try:
                users[user] = _Hash.parse(hashed)
            except (ValueError, TypeError) as exc:
                raise UsersFileError(f"{path}:{number}: bad hash for {user!r}: {exc}") from None
        return cls(users)

    def verify(self, username: str, password: str) -> bool:
        known = self._users.get(username)
        ok = (known or _DUMMY).matches(password)
        return ok and known is not None
