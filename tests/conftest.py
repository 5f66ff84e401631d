"""Shared fixtures: free ports, a real mosquitto broker, and simulated fleets."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nestsim.fleet import Fleet, FleetConfig

from nestd.devbroker import BrokerUnavailable, free_ports, private_broker


def free_udp_ports(n: int) -> list[int]:
    """Ports that are free right now on 127.0.0.1 (held open together so they're distinct)."""
    return free_ports(n, socket.SOCK_DGRAM)


def free_tcp_port() -> int:
    (port,) = free_ports(1, socket.SOCK_STREAM)
    return port


class Broker:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real mosquitto broker on a free loopback port, for the whole test session."""
    try:
        with private_broker(tmp_path_factory.mktemp("mosquitto")) as port:
            yield Broker("127.0.0.1", port)
    except BrokerUnavailable as exc:
        pytest.fail(f"{exc}")


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
