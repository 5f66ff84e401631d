"""Routes for the safety tests: straight out-and-back deliveries built in a local frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nestd.airspace import LatLon, LocalFrame, Waypoint
from nestd.safety.airframe import Airframe
from nestd.safety.energy import EnergyRoute

NEST = LatLon(32.9600, -96.7250)
FRAME = LocalFrame(NEST)


def at(x_m: float, y_m: float) -> LatLon:
    """A point `x_m` east and `y_m` north of the nest."""
    return FRAME.point_to_wgs84(x_m, y_m)


def straight_route(
    distance_m: float,
    track_deg: float = 0.0,
    *,
    airframe: Airframe | None = None,
    cruise_alt_m: float = 60.0,
    safe_sites: Sequence[LatLon] = (),
) -> EnergyRoute:
    """Nest -> climb -> straight out -> delivery -> climb -> straight back -> land."""
    af = airframe or Airframe()
    t = math.radians(track_deg)
    goal = at(distance_m * math.sin(t), distance_m * math.cos(t))
    drop_alt = af.delivery.delivery_alt_agl_m
    out = [
        Waypoint(NEST.lat_deg, NEST.lon_deg, 0.0),
        Waypoint(NEST.lat_deg, NEST.lon_deg, cruise_alt_m),
        Waypoint(goal.lat_deg, goal.lon_deg, cruise_alt_m),
        Waypoint(goal.lat_deg, goal.lon_deg, drop_alt),
    ]
    back = [
        Waypoint(goal.lat_deg, goal.lon_deg, drop_alt),
        Waypoint(goal.lat_deg, goal.lon_deg, cruise_alt_m),
        Waypoint(NEST.lat_deg, NEST.lon_deg, cruise_alt_m),
        Waypoint(NEST.lat_deg, NEST.lon_deg, 0.0),
    ]
    return EnergyRoute.from_waypoints(out, back, safe_sites)
