"""SMTP: sans-I/O server and client protocols, their asyncio drivers, DSNs."""
