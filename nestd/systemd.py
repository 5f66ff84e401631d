"""systemd's notify protocol (READY, STATUS, WATCHDOG) over $NOTIFY_SOCKET, without libsystemd."""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    """Sends sd_notify datagrams when running under systemd (Type=notify); a no-op otherwise."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr: str | None = None
        if addr:
            # A leading '@' names a socket in the abstract namespace.
            self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def notify(self, *fields: str) -> None:
        if self._addr is None:
            return
        # Never block the event loop on systemd: a full socket queue drops this one message
        # (the next watchdog ping follows soon), and a vanished systemd is nothing to fix here.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
            s.setblocking(False)
            s.sendto("\n".join(fields).encode(), self._addr)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", f"STATUS={status}")
