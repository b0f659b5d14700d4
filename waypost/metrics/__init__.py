"""Prometheus metrics: the counterparts of Exchange's MSExchangeMTA counters."""
