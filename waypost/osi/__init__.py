"""The OSI upper-layer stack for X.400 P1, as sans-I/O protocol layers."""
