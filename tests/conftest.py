"""Shared fixtures: free ports, a real mosquitto broker, and simulated fleets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nestsim.fleet import Fleet, FleetConfig


def free_udp_ports(n: int) -> list[int]:
    """Ports that are free right now on 127.0.0.1 (held open together so they're distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


class Broker:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real mosquitto broker on a free loopback port, for the whole test session."""
    binary = _mosquitto_binary()
    if binary is None:
        pytest.fail(
            "mosquitto is not installed: run `make test` (installs it) or "
            "`sudo apt-get install mosquitto`"
        )
    port = free_tcp_port()
    d = tmp_path_factory.mktemp("mosquitto")
    conf = d / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {d / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"mosquitto exited at start: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("mosquitto did not start listening within 10 s")
    try:
        yield Broker("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def fleet_config(n: int = 1, **overrides: object) -> FleetConfig:
    """A fleet on free ports, fast to boot, for tests."""
    params: dict[str, object] = {
        "vehicles": n,
        "api_remote_ports": free_udp_ports(n),
        "api_local_base": 0,
        "gcs_local_base": 0,
        "gcs_link": False,
        "ekf_ready_s": 0.0,
    }
    params.update(overrides)
    return FleetConfig(**params)  # type: ignore[arg-type]


@pytest.fixture
async def px4_fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    """A running PX4-flavoured fleet; parametrize indirectly with the vehicle count."""
    n = getattr(request, "param", 1)
    async with Fleet(fleet_config(n, speed=5.0)) as fleet:
        yield fleet


@pytest.fixture
def results_dir() -> Path:
    p = Path(__file__).resolve().parent.parent / "results"
    p.mkdir(exist_ok=True)
    return p
