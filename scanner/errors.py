"""Exceptions raised by ``scanner``.

::

    ScannerError             base; ``exit_code`` is what the CLI exits with
    ├── ConfigError          the daemon's TOML config is invalid (file, key, value, reason) → 2
    ├── InstrumentsUnavailable  instrument metadata could not be loaded at start → 1
    ├── JournalError         the journal cannot be written or read → 1
    └── AlertError           a webhook delivery failed in a way retries will not fix → 1
"""

from __future__ import annotations


class ScannerError(Exception):
    exit_code = 1


class ConfigError(ScannerError):
    """Invalid configuration. ``problems`` lists every (key path, reason) found, not only the first."""

    exit_code = 2

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {key}: {reason}" for key, reason in problems)
        super().__init__(f"{path}: invalid configuration:\n{lines}")


class InstrumentsUnavailable(ScannerError):
    """A venue's instrument metadata could not be loaded at start (network, venue error, bad reply)."""

    def __init__(self, where: str, url: str, reason: str) -> None:
        self.where = where
        self.url = url
        self.reason = reason
        super().__init__(f"{where}: instrument metadata could not be loaded from {url}: {reason}")


class JournalError(ScannerError):
    pass


class JournalIOError(JournalError):
    """The disk refused a journal write or sync (ENOSPC, EIO): transient, the event is kept and retried."""


class AlertError(ScannerError):
    pass
