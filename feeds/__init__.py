"""Exchange feeds: venue protocols (pure), books, sync, connections, replay exchange, recorder.

``feeds`` imports neither ``rules`` nor ``scanner``. Venue protocol modules import no I/O.
"""
