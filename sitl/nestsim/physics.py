"""Point-mass multirotor kinematics, wind, and battery: pure functions and small state objects."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

GRAVITY_MPS2 = 9.80665


@dataclass(frozen=True, slots=True)
class Airframe:
    """A delivery multirotor; the defaults describe a ~6.5 kg quad carrying up to 2.3 kg."""

    empty_mass_kg: float = 6.5
    max_payload_kg: float = 2.3
    battery_capacity_wh: float = 488.0
    battery_cells: int = 6
    internal_resistance_ohm: float = 0.03
    hover_power_w: float = 950.0  # at empty mass, still air
    hover_power_mass_exponent: float = 1.5  # ideal momentum theory
    forward_power_gain: float = 0.35  # extra fraction of hover power at cruise airspeed
    cruise_speed_mps: float = 25.0
    max_airspeed_mps: float = 28.0
    climb_speed_mps: float = 4.0
    descent_speed_mps: float = 3.0
    land_speed_mps: float = 0.7
    horizontal_accel_mps2: float = 4.0
    vertical_accel_mps2: float = 3.0
    avionics_power_w: float = 8.0
    ground_idle_fraction: float = 0.08  # armed on the ground, props at idle

    def power_w(self, mass_kg: float, airspeed_mps: float, climb_mps: float) -> float:
        hover = (
            self.hover_power_w * (mass_kg / self.empty_mass_kg) ** self.hover_power_mass_exponent
        )
        forward = hover * self.forward_power_gain * (airspeed_mps / self.cruise_speed_mps) ** 2
        climb = mass_kg * GRAVITY_MPS2 * max(climb_mps, 0.0) / 0.7
        return self.avionics_power_w + hover + forward + climb


# Resting cell voltage against state of charge for a LiPo cell.
_OCV_CURVE = (
    (0.00, 3.30),
    (0.05, 3.55),
    (0.10, 3.65),
    (0.20, 3.72),
    (0.40, 3.80),
    (0.60, 3.87),
    (0.80, 4.00),
    (1.00, 4.20),
)


def cell_ocv_v(soc: float) -> float:
    soc = min(max(soc, 0.0), 1.0)
    for (s0, v0), (s1, v1) in itertools.pairwise(_OCV_CURVE):
        if soc <= s1:
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return _OCV_CURVE[-1][1]


@dataclass(slots=True)
class Battery:
    capacity_wh: float
    cells: int
    internal_resistance_ohm: float
    energy_wh: float
    ambient_c: float = 20.0
    temperature_c: float = 20.0
    current_a: float = 0.0
    voltage_v: float = 0.0
    consumed_mah: float = 0.0
    consumed_wh: float = 0.0

    def __post_init__(self) -> None:
        self.voltage_v = self.cells * cell_ocv_v(self.soc)

    @property
    def soc(self) -> float:
        return max(self.energy_wh, 0.0) / self.capacity_wh

    def draw(self, power_w: float, dt_s: float) -> None:
        ocv = self.cells * cell_ocv_v(self.soc)
        self.current_a = power_w / max(ocv, 1.0)
        self.voltage_v = max(ocv - self.current_a * self.internal_resistance_ohm, 0.0)
        used_wh = power_w * dt_s / 3600.0
        self.energy_wh = max(self.energy_wh - used_wh, 0.0)
        self.consumed_wh += used_wh
        self.consumed_mah += self.current_a * dt_s / 3.6
        # First-order heating from I^2 R losses against cooling to ambient.
        heat = self.current_a**2 * self.internal_resistance_ohm
        self.temperature_c += dt_s * (heat / 400.0 - (self.temperature_c - self.ambient_c) / 300.0)


@dataclass(slots=True)
class Wind:
    """Air-mass velocity (east, north, m/s, the direction it blows towards) plus gusts."""

    east_mps: float = 0.0
    north_mps: float = 0.0
    gust_mps: float = 0.0
    gust_time_constant_s: float = 4.0
    _gust_e: float = 0.0
    _gust_n: float = 0.0
    _rng: random.Random = field(default_factory=lambda: random.Random(7))

    def step(self, dt_s: float) -> None:
        if self.gust_mps <= 0.0:
            self._gust_e = self._gust_n = 0.0
            return
        # Ornstein-Uhlenbeck process: gusts of about `gust_mps` standard deviation.
        a = math.exp(-dt_s / self.gust_time_constant_s)
        s = self.gust_mps * math.sqrt(1.0 - a * a)
        self._gust_e = a * self._gust_e + s * self._rng.gauss(0.0, 1.0)
        self._gust_n = a * self._gust_n + s * self._rng.gauss(0.0, 1.0)

    @property
    def now_e(self) -> float:
        return self.east_mps + self._gust_e

    @property
    def now_n(self) -> float:
        return self.north_mps + self._gust_n


def limit_by_airspeed(
    ve: float, vn: float, we: float, wn: float, max_air: float
) -> tuple[float, float]:
    """The ground velocity closest to (ve, vn) in its direction that needs at most `max_air`.

    With wind stronger than the drone can fly against, it drifts downwind.
    """
    ae, an = ve - we, vn - wn
    if ae * ae + an * an <= max_air * max_air:
        return ve, vn
    # Largest s in [0, 1] with |s*v - w| <= max_air: solve |s v - w|^2 = max_air^2.
    a = ve * ve + vn * vn
    b = -2.0 * (ve * we + vn * wn)
    c = we * we + wn * wn - max_air * max_air
    if a > 1e-12:
        disc = b * b - 4.0 * a * c
        if disc >= 0.0:
            s = (-b + math.sqrt(disc)) / (2.0 * a)
            if s >= 0.0:
                s = min(s, 1.0)
                return ve * s, vn * s
    w = math.hypot(we, wn)
    if w <= max_air:
        return 0.0, 0.0
    k = (w - max_air) / w
    return we * k, wn * k


def approach(
    pos: float, vel: float, target: float, v_max_up: float, v_max_down: float, acc: float, dt: float
) -> tuple[float, float]:
    """One axis: move towards `target`, braking in time, never overshooting within a step."""
    d = target - pos
    if abs(d) < 1e-3 and abs(vel) < 0.1:
        return target, 0.0
    v_cap = v_max_up if d > 0 else v_max_down
    v_des = math.copysign(min(v_cap, math.sqrt(2.0 * acc * abs(d))), d) if d else 0.0
    dv = v_des - vel
    step = acc * dt
    vel = vel + max(-step, min(step, dv))
    new = pos + vel * dt
    if (target - new) * d <= 0.0:  # reached or passed
        return target, 0.0
    return new, vel


def approach_2d(
    e: float,
    n: float,
    ve: float,
    vn: float,
    te: float,
    tn: float,
    v_max: float,
    acc: float,
    dt: float,
    wind_e: float,
    wind_n: float,
    max_air: float,
) -> tuple[float, float, float, float]:
    """Horizontal: fly towards (te, tn) at up to `v_max`, braking in time, limited by wind."""
    de, dn = te - e, tn - n
    dist = math.hypot(de, dn)
    if dist > 1e-9:
        speed = min(v_max, math.sqrt(2.0 * acc * dist))
        de_u, dn_u = de / dist, dn / dist
        des_e, des_n = de_u * speed, dn_u * speed
    else:
        de_u = dn_u = 0.0
        des_e = des_n = 0.0
    des_e, des_n = limit_by_airspeed(des_e, des_n, wind_e, wind_n, max_air)
    dve, dvn = des_e - ve, des_n - vn
    dv = math.hypot(dve, dvn)
    step = acc * dt
    if dv > step:
        dve, dvn = dve * step / dv, dvn * step / dv
    ve, vn = ve + dve, vn + dvn
    ne, nn = e + ve * dt, n + vn * dt
    if dist > 1e-9 and ((te - ne) * de_u + (tn - nn) * dn_u) <= 0.0:
        # Reached (or would pass) the target within this step.
        return te, tn, 0.0, 0.0
    return ne, nn, ve, vn
