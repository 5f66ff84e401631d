"""A private mosquitto on a free loopback port, for the demo, the tests and the benchmarks.

Not used by the daemon, which connects to the store's broker from its config.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class BrokerUnavailable(RuntimeError):
    """mosquitto is missing or did not start; the message says which and how to fix it."""


def free_ports(n: int, kind: int = socket.SOCK_DGRAM) -> list[int]:
    """Ports free right now on 127.0.0.1, held open together so they are distinct."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


@contextlib.contextmanager
def private_broker(workdir: Path, extra_conf: str = "") -> Iterator[int]:
    """Start mosquitto listening on a free loopback port (yielded); stop it on exit.

    Its config and log go in `workdir`; `extra_conf` adds lines to the config.
    """
    binary = mosquitto_binary()
    if binary is None:
        raise BrokerUnavailable("mosquitto is not installed: `make demo` or `make test` "
                                "installs it, or run `sudo apt-get install mosquitto`")
    (port,) = free_ports(1, socket.SOCK_STREAM)
    conf = workdir / "mosquitto.conf"
    log = workdir / "mosquitto.log"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"log_dest file {log}\n{extra_conf}")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise BrokerUnavailable(f"mosquitto exited at start: {err.strip()} (see {log})")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"mosquitto did not start listening within 10 s (see {log})") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr is not None:
            proc.stderr.close()
