"""Airframe profiles: validation, and agreement with the simulator's airframe."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nestsim.physics import Airframe as SimAirframe
from pydantic import ValidationError

from nestd.safety.airframe import DEFAULT_AIRFRAME, Airframe, DeliveryMethod, PowerModel

SIM = SimAirframe()


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("empty_mass_kg", "empty_mass_kg"),
        ("max_payload_kg", "max_payload_kg"),
        ("battery_capacity_wh", "battery_capacity_wh"),
        ("cruise_speed_mps", "cruise_speed_mps"),
        ("max_airspeed_mps", "max_airspeed_mps"),
        ("climb_speed_mps", "climb_speed_mps"),
        ("descent_speed_mps", "descent_speed_mps"),
        ("land_speed_mps", "land_speed_mps"),
        ("horizontal_accel_mps2", "horizontal_accel_mps2"),
        ("vertical_accel_mps2", "vertical_accel_mps2"),
    ],
)
def test_defaults_match_nestsim_airframe(ours: str, theirs: str) -> None:
    assert getattr(DEFAULT_AIRFRAME, ours) == getattr(SIM, theirs)


def test_power_model_defaults_match_nestsim() -> None:
    p = DEFAULT_AIRFRAME.power
    assert p.hover_power_w == SIM.hover_power_w
    assert p.reference_mass_kg == SIM.empty_mass_kg
    assert p.mass_exponent == SIM.hover_power_mass_exponent
    assert p.forward_power_gain == SIM.forward_power_gain
    assert p.reference_airspeed_mps == SIM.cruise_speed_mps
    assert p.avionics_power_w == SIM.avionics_power_w
    assert p.ground_idle_fraction == SIM.ground_idle_fraction


@given(
    mass=st.floats(5.0, 10.0),
    air=st.floats(0.0, 30.0),
    climb=st.floats(-5.0, 5.0),
)
def test_power_equals_nestsim_power(mass: float, air: float, climb: float) -> None:
    assert DEFAULT_AIRFRAME.power_w(mass, air, climb) == pytest.approx(
        SIM.power_w(mass, air, climb), rel=1e-12
    )


def test_hover_power_grows_with_mass_to_the_exponent() -> None:
    p = PowerModel()
    assert p.hover_power_w_at(6.5) == pytest.approx(950.0)
    assert p.hover_power_w_at(4 * 6.5) == pytest.approx(950.0 * 8.0)


def test_defaults_from_the_issue() -> None:
    a = Airframe()
    assert (a.max_payload_kg, a.cruise_speed_mps) == (2.3, 25.0)
    assert (a.max_wind_sustained_mps, a.max_wind_gust_mps) == (10.0, 12.0)
    assert a.delivery.method is DeliveryMethod.WINCH
    assert a.delivery.delivery_alt_agl_m == 7.0
    assert a.landing_reserve_wh == pytest.approx(0.2 * 488.0 * 0.9)


@pytest.mark.parametrize(
    "bad",
    [
        {"empty_mass_kg": "6.5"},  # strict: no string coercion in a safety file
        {"empty_mass_kg": -1.0},
        {"max_airspeed_mps": 20.0},  # below cruise
        {"max_wind_gust_mps": 8.0},  # below sustained
        {"usable_fraction": 1.5},
        {"unknown_field": 1},
        {"reserve": {"landing_reserve_fraction": 1.0}},
        {"delivery": {"method": "parachute"}},
    ],
)
def test_invalid_profiles_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Airframe.model_validate(bad)


def test_profile_loads_from_plain_config_dict() -> None:
    a = Airframe.model_validate(
        {"name": "heavy", "empty_mass_kg": 9.0, "delivery": {"method": "land"}}
    )
    assert a.delivery.method is DeliveryMethod.LAND
    assert a.delivery.delivery_alt_agl_m == 0.0
