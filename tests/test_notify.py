"""systemd notify protocol against a real AF_UNIX datagram socket (path and abstract namespace)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.notify import Notifier
from tests.conftest import timeout


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound where systemd's NOTIFY_SOCKET would be."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(timeout(5))
    yield sock, path
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_stopping_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    """READY=1 with STATUS, STATUS alone and STOPPING=1 arrive as KEY=VALUE lines."""
    sock, path = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("scanning 12 candidates")
    assert receive(sock) == "READY=1\nSTATUS=scanning 12 candidates"
    assert notifier.status("2 qualified\nnow")
    assert receive(sock) == "STATUS=2 qualified now"
    assert notifier.stopping()
    assert receive(sock) == "STOPPING=1"
    notifier.close()


def test_reloading_carries_the_monotonic_clock(listener: tuple[socket.socket, str]) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC (Type=notify-reload requires it), read from CLOCK_MONOTONIC."""
    sock, path = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    fields = dict(line.split("=", 1) for line in receive(sock).split("\n"))
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    notifier.close()


def test_abstract_namespace_socket() -> None:
    """An address starting with '@' is an abstract-namespace socket."""
    name = f"arbscan-test-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(timeout(5))
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready()
        assert receive(sock) == "READY=1"
        notifier.close()
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    """Not under systemd: nothing is sent, nothing fails, the watchdog task returns at once."""
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s is None
    asyncio.run(notifier.run_watchdog())


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    """If the socket is gone (systemd restarted), notify returns False and the daemon carries on."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert notifier.ready() is False
    assert notifier.status("still here") is False
    notifier.close()


def test_watchdog_interval_from_environment() -> None:
    """WATCHDOG_USEC gives a ping every half of it; a WATCHDOG_PID of another process disables it."""
    assert Notifier.from_environ({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}).watchdog_interval_s == 15.0
    mine = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_environ(mine).watchdog_interval_s == 2.0
    other = {**mine, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_environ(other).watchdog_interval_s is None
    assert Notifier.from_environ({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "abc"}).watchdog_interval_s is None


async def test_watchdog_pings_from_the_event_loop_while_healthy(listener: tuple[socket.socket, str]) -> None:
    """run_watchdog sends WATCHDOG=1 repeatedly; when the health check fails it stops pinging."""
    sock, path = listener
    sock.setblocking(False)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    healthy = [True]
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(notifier.run_watchdog(lambda: healthy[0]))
    try:
        pings = [await asyncio.wait_for(loop.sock_recv(sock, 64), timeout(5)) for _ in range(3)]
        assert pings == [b"WATCHDOG=1"] * 3
        healthy[0] = False
        # Drain what was sent before the flag flipped, then prove silence by a marker sent after it.
        await asyncio.sleep(0.05)
        while True:
            try:
                sock.recv(64)
            except BlockingIOError:
                break
        await asyncio.sleep(0.05)
        notifier.status("marker")
        assert await asyncio.wait_for(loop.sock_recv(sock, 64), timeout(5)) == b"STATUS=marker"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        notifier.close()
