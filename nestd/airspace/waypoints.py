"""Plain mission waypoints, as the mission builder and MAVLink layer exchange them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AltFrame(StrEnum):
    """What a waypoint altitude is measured from."""

    RELATIVE_HOME = "relative_home"  # MAV_FRAME_GLOBAL_RELATIVE_ALT; home is the nest
    AMSL = "amsl"  # MAV_FRAME_GLOBAL


@dataclass(frozen=True, slots=True)
class Waypoint:
    """One mission position; consecutive waypoints are joined by straight legs."""

    lat_deg: float
    lon_deg: float
    alt_m: float
    frame: AltFrame = AltFrame.RELATIVE_HOME
