"""Fixtures for the simulator's tests: a fleet plus a pymavlink ground station per vehicle."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nestsim.fleet import Fleet

from tests.conftest import fleet_config
from tests.sim.gcs import TestGcs


@contextlib.asynccontextmanager
async def sim(
    autopilot: str = "px4", n: int = 1, **kw: Any
) -> AsyncIterator[tuple[Fleet, list[TestGcs]]]:
    """A running fleet with one listening TestGcs on each vehicle's API link, all heard from."""
    kw.setdefault("speed", 10.0)
    cfg = fleet_config(n, autopilot=autopilot, **kw)
    assert cfg.api_remote_ports is not None
    gcss = [await TestGcs.listen(p) for p in cfg.api_remote_ports]
    try:
        async with Fleet(cfg) as fleet:
            for g in gcss:
                await g.wait_heard()
            yield fleet, gcss
    finally:
        for g in gcss:
            g.close()


@pytest.fixture
async def px4() -> AsyncIterator[tuple[Fleet, TestGcs]]:
    async with sim("px4") as (fleet, gcss):
        yield fleet, gcss[0]


@pytest.fixture
async def ardupilot() -> AsyncIterator[tuple[Fleet, TestGcs]]:
    async with sim("ardupilot", ekf_ready_s=3.0) as (fleet, gcss):
        yield fleet, gcss[0]
