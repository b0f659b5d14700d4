"""The MTA database: the Store interface and its embedded SQLite implementation."""

from waypost.store.base import (
    BadContentError,
    ClaimBatch,
    MessageState,
    NewMessage,
    OwedRecipient,
    OwedReport,
    Quarantined,
    RecipientState,
    ReportOwed,
    Settlement,
    Store,
    StoreCorruptError,
    StoreError,
)
from waypost.store.database import Database
from waypost.store.sqlite import SQLiteStore

__all__ = [
    "BadContentError",
    "ClaimBatch",
    "Database",
    "MessageState",
    "NewMessage",
    "OwedRecipient",
    "OwedReport",
    "Quarantined",
    "RecipientState",
    "ReportOwed",
    "SQLiteStore",
    "Settlement",
    "Store",
    "StoreCorruptError",
    "StoreError",
]
