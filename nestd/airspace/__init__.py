"""Store airspace: geofence files, local geometry, routing, mission checks and vehicle fences."""

from nestd.airspace.airspace import Airspace
from nestd.airspace.breach import BatchBreach, Breach, BreachKind, BreachPredictor
from nestd.airspace.ed269 import parse_ed269
from nestd.airspace.errors import (
    AirspaceError,
    AirspaceTimeError,
    AirspaceValidationError,
    Ed269Error,
    Problem,
)
from nestd.airspace.fence import FenceError, FenceItem, FenceLimits, FencePlan, build_fence
from nestd.airspace.geo import LatLon, LocalFrame, bearing_deg, distance_m, path_length_m
from nestd.airspace.loader import load_airspace, parse_airspace
from nestd.airspace.mission import Violation, ViolationKind, Violations, validate_mission
from nestd.airspace.model import Margins, Site, SiteKind, StoreInfo, Zone
from nestd.airspace.router import (
    DeliveryPlan,
    NoRoute,
    NoRouteReason,
    Route,
    RouterConfig,
    plan_delivery,
    plan_route,
)
from nestd.airspace.timewin import Instant
from nestd.airspace.updates import (
    ActiveFlight,
    AffectedFlight,
    AirspaceDiff,
    AirspaceKeeper,
    AirspaceUpdate,
    affected_flights,
    diff_airspace,
)
from nestd.airspace.waypoints import AltFrame, Waypoint

__all__ = [
    "ActiveFlight",
    "AffectedFlight",
    "Airspace",
    "AirspaceDiff",
    "AirspaceError",
    "AirspaceKeeper",
    "AirspaceTimeError",
    "AirspaceUpdate",
    "AirspaceValidationError",
    "AltFrame",
    "BatchBreach",
    "Breach",
    "BreachKind",
    "BreachPredictor",
    "DeliveryPlan",
    "Ed269Error",
    "FenceError",
    "FenceItem",
    "FenceLimits",
    "FencePlan",
    "Instant",
    "LatLon",
    "LocalFrame",
    "Margins",
    "NoRoute",
    "NoRouteReason",
    "Problem",
    "Route",
    "RouterConfig",
    "Site",
    "SiteKind",
    "StoreInfo",
    "Violation",
    "ViolationKind",
    "Violations",
    "Waypoint",
    "Zone",
    "affected_flights",
    "bearing_deg",
    "build_fence",
    "diff_airspace",
    "distance_m",
    "load_airspace",
    "parse_airspace",
    "parse_ed269",
    "path_length_m",
    "plan_delivery",
    "plan_route",
    "validate_mission",
]
