"""The queue manager: scheduling of due work, back-off, expiry and the reports owed."""
