"""The arbscan daemon: engine, events, sinks, metrics and the command line."""

__version__ = "0.1.0"
