"""The systemd notify protocol (``sd_notify(3)``): READY, STATUS, RELOADING, STOPPING and the watchdog.

Messages are ``KEY=VALUE`` lines in one datagram to the ``AF_UNIX`` socket named by ``NOTIFY_SOCKET``
(a path, or an abstract-namespace name written with a leading ``@``). Without ``NOTIFY_SOCKET`` (not under
systemd, or ``Type=simple``) every call is a no-op. The watchdog interval comes from ``WATCHDOG_USEC``
(honoured only if ``WATCHDOG_PID`` is unset or ours); :meth:`Notifier.run_watchdog` pings at half of it
from the event loop, so a blocked loop stops the pings and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("scanner.notify")


class Notifier:
    """Sends notifications to systemd; build it with :meth:`from_environ`."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if raw.isdigit() and int(raw) > 0 and (not pid or pid == str(os.getpid())):
            usec = int(raw)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased); True if a datagram was sent."""
        if self.address is None:
            return False
        payload = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, target)
        except OSError as exc:
            # systemd gone or the socket not ours: the daemon runs on, and says so once.
            if not self._warned:
                log.warning("systemd_notify_failed", error=exc.strerror or str(exc))
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify(ready=1, **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.notify(status=text.replace("\n", " "))

    def reloading(self) -> bool:
        """Before applying a reload (``Type=notify-reload`` wants MONOTONIC_USEC with it); ready() after."""
        return self.notify(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> bool:
        return self.notify(stopping=1)

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    async def run_watchdog(self, healthy: Callable[[], bool] | None = None) -> None:
        """Ping the watchdog every interval/2 while ``healthy()`` (default: always); returns if disabled."""
        interval = self.watchdog_interval_s
        if interval is None or not self.enabled:
            return
        while True:
            if healthy is None or healthy():
                self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
