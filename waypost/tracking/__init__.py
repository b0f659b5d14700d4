"""Message tracking: the journal of every message's life, and finding messages in it."""
