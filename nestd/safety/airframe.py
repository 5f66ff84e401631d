"""Airframe profiles: mass, battery, speeds, wind limits, delivery method, power and reserve."""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

GRAVITY_MPS2 = 9.80665


class _Strict(BaseModel):
    # strict: a "2" where a number belongs is a typo in a safety file, not something to coerce.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class DeliveryMethod(StrEnum):
    WINCH = "winch"  # lower the parcel on a tether from a hover
    LAND = "land"  # touch down at the customer, release, take off again


class PowerModel(_Strict):
    """Electrical power drawn in flight; the same formula nestsim's battery is drained by.

    P = avionics + P_hover(m) * (1 + k * (v_air / v_ref)^2) + m * g * max(v_climb, 0) / eta,
    with P_hover(m) = P0 * (m / m0)^exponent (momentum theory gives 1.5).
    """

    hover_power_w: float = Field(
        950.0, gt=0, description="P0: hover power in still air at the reference mass, W."
    )
    reference_mass_kg: float = Field(
        6.5, gt=0, description="m0: the mass P0 was measured at (the empty airframe), kg."
    )
    mass_exponent: float = Field(
        1.5, gt=0, le=3, description="How hover power grows with mass (1.5 = ideal rotor)."
    )
    forward_power_gain: float = Field(
        0.35, ge=0, description="k: extra fraction of hover power at the reference airspeed."
    )
    reference_airspeed_mps: float = Field(
        25.0, gt=0, description="v_ref: airspeed at which the extra power is k * P_hover, m/s."
    )
    climb_efficiency: float = Field(
        0.7, gt=0, le=1, description="eta: fraction of climb power that becomes potential energy."
    )
    avionics_power_w: float = Field(
        8.0, ge=0, description="Flight computer, radios, payload electronics: always on, W."
    )

    ground_idle_fraction: float = Field(
        0.08, ge=0, le=1, description="Armed on the ground, props idling: this share of P0."
    )

    def hover_power_w_at(self, mass_kg: float) -> float:
        return float(self.hover_power_w * (mass_kg / self.reference_mass_kg) ** self.mass_exponent)

    def power_w(self, mass_kg: float, airspeed_mps: float, climb_mps: float) -> float:
        """Total electrical power at a mass, airspeed and vertical speed (climb positive)."""
        hover = self.hover_power_w_at(mass_kg)
        ratio = airspeed_mps / self.reference_airspeed_mps
        forward = hover * self.forward_power_gain * ratio * ratio
        climb = mass_kg * GRAVITY_MPS2 * max(climb_mps, 0.0) / self.climb_efficiency
        return self.avionics_power_w + hover + forward + climb


class ReservePolicy(_Strict):
    """What is kept back on top of the planned flight."""

    landing_reserve_fraction: float = Field(
        0.2, ge=0, lt=1, description="Fixed reserve at landing, as a fraction of usable energy."
    )
    contingency_divert: bool = Field(
        True,
        description=(
            "Also keep the energy to divert from the route's farthest point to the nearest "
            "safe landing site, with the payload still aboard."
        ),
    )


class Delivery(_Strict):
    """How the parcel reaches the ground."""

    # Not strict: config files spell the method as a string.
    method: DeliveryMethod = Field(
        DeliveryMethod.WINCH, strict=False, description="Winch from a hover, or land."
    )
    winch_hover_height_m: float = Field(
        7.0, gt=0, le=30, description="Height above the drop point the drone hovers at to winch."
    )
    winch_rate_mps: float = Field(
        1.0, gt=0, description="Tether speed, lowering and raising (nestsim's default), m/s."
    )
    release_time_s: float = Field(
        10.0, ge=0, description="Hover time on the ground-contact: settle, release, confirm, s."
    )
    ground_time_s: float = Field(
        20.0, ge=0, description="For LAND: time on the ground (props idle) to release, s."
    )

    @property
    def delivery_alt_agl_m(self) -> float:
        """Height of the delivery waypoint above the drop point."""
        return self.winch_hover_height_m if self.method is DeliveryMethod.WINCH else 0.0


class Airframe(_Strict):
    """One airframe type; defaults are nestsim's quad so plans agree with what it flies."""

    name: str = Field("nestsim-quad", min_length=1, description="Profile name, for logs.")
    empty_mass_kg: float = Field(6.5, gt=0, description="Ready to fly, battery in, no parcel, kg.")
    max_payload_kg: float = Field(2.3, ge=0, description="Heaviest parcel allowed, kg.")
    battery_capacity_wh: float = Field(488.0, gt=0, description="Full battery energy, Wh.")
    usable_fraction: float = Field(
        0.9,
        gt=0,
        le=1,
        description=(
            "Share of capacity that may be used; the rest is never planned on (voltage sag "
            "and cell damage at the bottom of the curve)."
        ),
    )
    cruise_speed_mps: float = Field(25.0, gt=0, description="Planned groundspeed, m/s.")
    max_airspeed_mps: float = Field(
        28.0, gt=0, description="Most airspeed the controller will use to hold groundspeed, m/s."
    )
    min_groundspeed_mps: float = Field(
        3.0,
        gt=0,
        description="A leg flown slower than this over the ground counts as no headway, m/s.",
    )
    climb_speed_mps: float = Field(4.0, gt=0, description="Vertical climb speed, m/s.")
    descent_speed_mps: float = Field(3.0, gt=0, description="Vertical descent speed, m/s.")
    land_speed_mps: float = Field(0.7, gt=0, description="Descent speed near the ground, m/s.")
    slow_landing_height_m: float = Field(
        8.0, ge=0, description="Below this height the descent slows to land_speed_mps, m."
    )
    horizontal_accel_mps2: float = Field(
        4.0, gt=0, description="Speeding up and braking at each waypoint, horizontal, m/s^2."
    )
    vertical_accel_mps2: float = Field(
        3.0, gt=0, description="Speeding up and braking at each waypoint, vertical, m/s^2."
    )
    max_wind_sustained_mps: float = Field(10.0, gt=0, description="Sustained wind limit, m/s.")
    max_wind_gust_mps: float = Field(12.0, gt=0, description="Gust limit, m/s.")
    delivery: Delivery = Field(default_factory=Delivery, description="Delivery method.")
    power: PowerModel = Field(default_factory=PowerModel, description="Power model.")
    reserve: ReservePolicy = Field(default_factory=ReservePolicy, description="Reserve policy.")

    @model_validator(mode="after")
    def _consistent(self) -> Airframe:
        if self.max_airspeed_mps < self.cruise_speed_mps:
            raise ValueError("max_airspeed_mps must be at least cruise_speed_mps")
        if self.max_wind_gust_mps < self.max_wind_sustained_mps:
            raise ValueError("max_wind_gust_mps must be at least max_wind_sustained_mps")
        if self.min_groundspeed_mps >= self.cruise_speed_mps:
            raise ValueError("min_groundspeed_mps must be below cruise_speed_mps")
        if not all(
            math.isfinite(v)
            for v in (self.empty_mass_kg, self.battery_capacity_wh, self.cruise_speed_mps)
        ):
            raise ValueError("masses, capacities and speeds must be finite")
        return self

    @property
    def usable_energy_wh(self) -> float:
        return self.battery_capacity_wh * self.usable_fraction

    @property
    def unusable_energy_wh(self) -> float:
        return self.battery_capacity_wh - self.usable_energy_wh

    @property
    def landing_reserve_wh(self) -> float:
        return self.usable_energy_wh * self.reserve.landing_reserve_fraction

    def mass_kg(self, payload_kg: float) -> float:
        return self.empty_mass_kg + payload_kg

    def power_w(self, mass_kg: float, airspeed_mps: float, climb_mps: float) -> float:
        return self.power.power_w(mass_kg, airspeed_mps, climb_mps)


DEFAULT_AIRFRAME = Airframe()
