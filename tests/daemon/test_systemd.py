"""The sd_notify client: messages arrive, abstract sockets work, a full queue never blocks."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from nestd.systemd import Notifier


def test_ready_status_and_watchdog_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
        assert n.enabled and n.watchdog_s == 3.0
        n.ready("up")
        n.watchdog()
        assert srv.recv(100) == b"READY=1\nSTATUS=up"
        assert srv.recv(100) == b"WATCHDOG=1"


def test_abstract_namespace_socket(tmp_path: Path) -> None:
    name = f"nestd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert srv.recv(100) == b"STATUS=hello"


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))  # nobody reads: the queue fills up
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        t0 = time.monotonic()
        for _ in range(500):
            n.watchdog()
        assert time.monotonic() - t0 < 2.0


def test_not_under_systemd_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_s is None
    n.ready("nothing happens")


def test_watchdog_for_another_pid_is_ignored() -> None:
    n = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000",
                  "WATCHDOG_PID": "1"})
    assert n.watchdog_s is None
