"""The energy model against nestsim's own kinematics and power: plans agree with what it flies."""

from __future__ import annotations

import pytest
from nestsim.physics import Airframe as SimAirframe
from nestsim.physics import approach, approach_2d

from nestd.safety.airframe import Airframe
from nestd.safety.energy import WindVector, evaluate_energy

from .helpers import straight_route

SIM = SimAirframe()
DT_S = 0.05


def sim_leg_wh(distance_m: float, mass_kg: float, wind: WindVector) -> float:
    """Fly north for `distance_m` at cruise with nestsim's controller; energy drawn."""
    e = n = ve = vn = 0.0
    used_wh = 0.0
    for _ in range(200_000):
        e, n, ve, vn = approach_2d(
            e, n, ve, vn, 0.0, distance_m, SIM.cruise_speed_mps, SIM.horizontal_accel_mps2,
            DT_S, wind.east_mps, wind.north_mps, SIM.max_airspeed_mps,
        )  # fmt: skip
        air = ((ve - wind.east_mps) ** 2 + (vn - wind.north_mps) ** 2) ** 0.5
        used_wh += SIM.power_w(mass_kg, air, 0.0) * DT_S / 3600.0
        if n >= distance_m and ve == vn == 0.0:
            return used_wh
    raise AssertionError("the simulated leg never arrived")


def sim_climb_wh(height_m: float, mass_kg: float) -> float:
    u = vu = 0.0
    used_wh = 0.0
    for _ in range(100_000):
        u, vu = approach(
            u, vu, height_m, SIM.climb_speed_mps, SIM.descent_speed_mps,
            SIM.vertical_accel_mps2, DT_S,
        )  # fmt: skip
        used_wh += SIM.power_w(mass_kg, 0.0, vu) * DT_S / 3600.0
        if u == height_m and vu == 0.0:
            return used_wh
    raise AssertionError("the simulated climb never arrived")


@pytest.mark.parametrize(
    "wind",
    [
        WindVector(),
        WindVector.from_direction(0.0, 6.0),
        WindVector.from_direction(120.0, 8.0),
        WindVector.from_direction(90.0, 9.0),
    ],
    ids=["calm", "headwind_capped", "quartering_tailwind", "crosswind"],
)
def test_cruise_leg_energy_is_at_most_3_percent_above_nestsim_never_below(
    wind: WindVector,
) -> None:
    d = evaluate_energy(
        Airframe(), straight_route(3000.0), wind=wind, payload_kg=2.0, battery_energy_wh=488.0
    )
    (leg,) = [p for p in d.phases if p.phase == "cruise_out_1"]
    sim_wh = sim_leg_wh(leg.distance_m, 8.5, wind)
    assert sim_wh <= leg.energy_wh <= 1.03 * sim_wh


def test_climb_energy_is_at_most_5_percent_above_nestsim_never_below() -> None:
    d = evaluate_energy(
        Airframe(), straight_route(1000.0), wind=WindVector(), payload_kg=2.0, battery_energy_wh=488
    )
    (climb,) = [p for p in d.phases if p.phase == "takeoff_climb"]
    sim_wh = sim_climb_wh(60.0, 8.5)
    assert sim_wh <= climb.energy_wh <= 1.05 * sim_wh
