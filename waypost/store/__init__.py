"""The MTA database: the Store interface and its embedded SQLite implementation."""

from waypost.store.base import (
    Claim,
    ClaimBatch,
    MessageState,
    NewMessage,
    Outcome,
    Quarantined,
    RecipientState,
    ReportOwed,
    Result,
    Store,
    StoreCorruptError,
    StoreError,
)
from waypost.store.database import BadContentError, Database
from waypost.store.sqlite import SQLiteStore

__all__ = [
    "BadContentError",
    "Claim",
    "ClaimBatch",
    "Database",
    "MessageState",
    "NewMessage",
    "Outcome",
    "Quarantined",
    "RecipientState",
    "ReportOwed",
    "Result",
    "SQLiteStore",
    "Store",
    "StoreCorruptError",
    "StoreError",
]
