"""Kraken spot: websocket v2 ``book`` (live) and v1 ``book`` (recordings, replay), checksums, metadata."""
