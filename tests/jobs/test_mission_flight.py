"""Built delivery missions flown by nestsim through FleetLink over real UDP, PX4 and ArduPilot."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import shapely
from nestsim.fleet import Fleet
from nestsim.vehicle import SimVehicle

from nestd.airspace import (
    Airspace,
    FenceLimits,
    LatLon,
    NoRoute,
    Site,
    SiteKind,
    build_fence,
    distance_m,
    plan_delivery,
    validate_mission,
)
from nestd.airspace.testing import synthetic_airspace
from nestd.jobs.mission import BuiltMission, build_delivery_mission
from nestd.mavlink.config import EndpointConfig, LinkConfig
from nestd.mavlink.items import fence_items, mission_items, mission_style, rally_items
from nestd.mavlink.link import FleetLink, Notice
from nestd.mavlink.protocols.mission import FENCE, MISSION, RALLY
from nestd.mavlink.state import MissionCurrentChanged, MissionItemReached
from nestd.mavlink.vehicle import Vehicle
from nestd.safety.airframe import DEFAULT_AIRFRAME, DeliveryMethod
from tests.conftest import fleet_config

SPEED = 10.0  # simulated seconds per wall second: a ~150 s delivery in ~15 s
SYSID = 2  # the second pad, a few metres east of the nest: the pad leg is a real leg
GOAL_XY = (300.0, 260.0)  # ~400 m from the nest
KEEP_OUT_XY = (150.0, 130.0)  # on the straight line there
PARCEL_KG = 1.2
FLIGHT_TIMEOUT_S = 45.0  # wall seconds; the flight takes about 15


@dataclass
class Progress:
    """MISSION_CURRENT / MISSION_ITEM_REACHED as the vehicle reported them, in order."""

    events: list[tuple[str, int]] = field(default_factory=list)

    def on_notice(self, n: Notice) -> None:
        if n.vehicle != SYSID:
            return
        if isinstance(n.detail, MissionItemReached):
            self.events.append(("reached", n.detail.seq))
        elif isinstance(n.detail, MissionCurrentChanged):
            self.events.append(("current", n.detail.seq))

    def first(self, pred: Callable[[tuple[str, int]], bool]) -> int | None:
        """Index of the first event `pred` holds for."""
        return next((i for i, e in enumerate(self.events) if pred(e)), None)


@contextlib.asynccontextmanager
async def flying(autopilot: str) -> AsyncIterator[tuple[Fleet, Vehicle, Progress]]:
    cfg = fleet_config(2, autopilot=autopilot, speed=SPEED, payload_kg=PARCEL_KG)
    assert cfg.api_remote_ports is not None
    link = FleetLink(LinkConfig(
        endpoints=[EndpointConfig(name=f"api{i}", kind="udp_listen", port=p)
                   for i, p in enumerate(cfg.api_remote_ports)],
        # One heartbeat per simulated second, or sped-up time starves the datalink failsafe.
        heartbeat_interval_s=1.0 / SPEED,
    ))
    progress = Progress()
    link.listen(progress.on_notice)
    async with link, Fleet(cfg) as fleet:
        await link.wait_for_vehicles({SYSID}, timeout_s=20)
        yield fleet, link.vehicles[SYSID], progress


def store_airspace(fleet: Fleet, pad: LatLon) -> Airspace:
    """The store around the fleet's nest: one keep-out to fly around, the pad, a rally site."""
    lat, lon, _ = fleet.home
    x, y = KEEP_OUT_XY
    base = synthetic_airspace(
        [shapely.box(x - 50, y - 50, x + 50, y + 50)],
        origin=LatLon(lat, lon),
        keep_in=shapely.Point(0, 0).buffer(2_000, quad_segs=4),  # 16 vertices: fits PX4's 64
    )
    field_xy = (-200.0, 150.0)
    return Airspace(
        store=base.store, frame=base.frame, keep_in=base.keep_in, zones=base.zones,
        nest=base.nest, margins=base.margins, source="<test>",
        pads=[Site("pad-2", "pad 2", SiteKind.PAD, pad, base.to_local(pad))],
        safe_landing_sites=[Site("field", "sports field", SiteKind.SAFE_LANDING,
                                 base.to_wgs84(*field_xy), field_xy, 30.0)],
    )


def plan_and_build(a: Airspace, v: Vehicle, pad: LatLon, method: DeliveryMethod,
                   now: float) -> BuiltMission:
    plan = plan_delivery(a, a.to_wgs84(*GOAL_XY), now)
    assert not isinstance(plan, NoRoute), plan
    assert len(plan.outbound.points) > 2  # bent around the keep-out
    built = build_delivery_mission(plan, DEFAULT_AIRFRAME, mission_style(v.profile), pad=pad,
                                   method=method, cruise_speed_mps=20.0)
    assert validate_mission(a, built.waypoints, now, home=pad) == []
    return built


def drops_near(sim: SimVehicle, where: LatLon, within_m: float) -> int:
    return sum(distance_m(LatLon(d.lat_deg, d.lon_deg), where) < within_m for d in sim.drops)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("autopilot", "method"),
    [("px4", DeliveryMethod.WINCH), ("ardupilot", DeliveryMethod.WINCH),
     # ArduCopter disarms on touchdown, so only PX4 flies a landing delivery.
     ("px4", DeliveryMethod.LAND)],
    ids=["px4-winch", "ardupilot-winch", "px4-land"],
)
async def test_delivery_mission_drops_at_the_customer_and_lands_on_the_pad(
    autopilot: str, method: DeliveryMethod,
) -> None:
    async with flying(autopilot) as (fleet, v, progress):
        sim = fleet.vehicle(SYSID - 1)
        pad = LatLon(sim.lat_deg, sim.lon_deg)
        assert distance_m(pad, LatLon(*fleet.home[:2])) > 5.0
        now = time.time()
        a = store_airspace(fleet, pad)
        built = plan_and_build(a, v, pad, method, now)

        lim = v.profile.fence
        fence = build_fence(
            a, FenceLimits(lim.max_vertices_per_polygon, lim.max_items, lim.max_polygons), now,
            route=[LatLon(w.lat_deg, w.lon_deg) for w in built.waypoints],
            max_alt_agl_m=built.max_alt_m,
        )
        assert fence.complete and fence.rally
        # Delivery failsafes on (datalink, geofence, battery): a trip would end the flight
        # somewhere other than the pad.
        await v.ensure_params()
        # Each upload is read back and compared by Vehicle.upload.
        await v.upload_fence(fence_items(fence))
        await v.upload_rally(rally_items(fence))
        items = mission_items(built)
        await v.upload_mission(items)
        assert len(sim.missions(FENCE)) == len(fence.fence)
        assert len(sim.missions(RALLY)) == len(fence.rally)
        assert len(sim.missions(MISSION)) == len(items)

        await v.arm()
        await v.start_mission()
        await v.wait_until(lambda: (v.state.alt_rel_m or 0.0) > 10.0, 10.0, "airborne")
        await v.wait_until(
            lambda: not v.state.armed and v.state.last_reached_seq == built.land_seq,
            FLIGHT_TIMEOUT_S, "landed on the pad and disarmed")

        assert sim.is_landed and not sim.armed
        assert distance_m(LatLon(sim.lat_deg, sim.lon_deg), pad) < 2.0
        assert len(sim.drops) == 1
        assert drops_near(sim, built.destination, 3.0) == 1
        (drop,) = sim.drops
        assert drop.line_length_m >= drop.height_above_ground_m - 0.1  # on the ground
        if method is DeliveryMethod.LAND:
            assert drop.height_above_ground_m == 0.0
        assert fleet.vehicle(0).drops == [] and sim.payload_kg == 0.0

        passed_release = progress.first(
            lambda e: (e[0] == "reached" and e[1] >= built.release_seq)
            or (e[0] == "current" and e[1] > built.release_seq))
        landed = progress.first(lambda e: e == ("reached", built.land_seq))
        assert passed_release is not None and landed is not None, progress.events
        assert passed_release < landed
        currents = [s for k, s in progress.events if k == "current"]
        assert currents == sorted(currents)  # never jumped back
