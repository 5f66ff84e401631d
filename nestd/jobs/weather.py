"""The nest's wind, from the drones' own estimates, for quotes, dispatch and ground stops.

Drones in the air estimate the wind well (PX4's WIND_COV, ArduPilot's WIND); drones on the
ground report zeros with a large variance, which is no information. Fresh airborne estimates
feed the safety layer's `WindMonitor`, which decides whether launches are allowed (with its
resume hysteresis); their mean is the wind the energy model plans with.

With no fresh estimate at all (nothing has flown lately), `require_data` decides: a nest with
its own anemometer wiring should require data; without one, launches go ahead planning in calm
air, and quotes say so with lower confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nestd.safety import CALM, WindLimits, WindMonitor, WindSample, WindVector
from nestd.safety.wind import WindState

MAV_LANDED_STATE_IN_AIR = 2
FRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class NestWindStatus:
    wind: WindVector
    launches_allowed: bool
    state: WindState
    reason: str
    measured: bool
    """False when no fresh estimate exists and the plan assumes calm air."""


class NestWind:
    def __init__(self, limits: WindLimits, *, require_data: bool = False,
                 max_variance_m2ps2: float = 4.0, fresh_s: float = FRESH_S) -> None:
        self.monitor = WindMonitor(limits)
        self.require_data = require_data
        self.max_variance_m2ps2 = max_variance_m2ps2
        self.fresh_s = fresh_s
        self._vectors: dict[str, tuple[float, float, float]] = {}  # source -> (t, north, east)

    def observe(self, source: str, now_s: float, north_mps: float | None,
                east_mps: float | None, var_horiz_m2ps2: float | None, airborne: bool) -> None:
        """One drone's current estimate; ignored unless it is flying and confident."""
        if not airborne or north_mps is None or east_mps is None:
            return
        if not (math.isfinite(north_mps) and math.isfinite(east_mps)):
            return
        if var_horiz_m2ps2 is not None and not var_horiz_m2ps2 <= self.max_variance_m2ps2:
            return
        self._vectors[source] = (now_s, north_mps, east_mps)
        self.monitor.update(WindSample.from_vector(now_s, north_mps, east_mps, source))

    def status(self, now_s: float) -> NestWindStatus:
        st = self.monitor.tick(now_s)
        fresh = [(n, e) for t, n, e in self._vectors.values() if now_s - t <= self.fresh_s]
        wind = (WindVector(sum(n for n, _ in fresh) / len(fresh),
                           sum(e for _, e in fresh) / len(fresh)) if fresh else CALM)
        if st.state is WindState.NO_DATA and not self.require_data:
            return NestWindStatus(CALM, True, st.state,
                                  "no wind estimate yet: planning in calm air", False)
        return NestWindStatus(wind, st.launches_allowed, st.state, st.reason, bool(fresh))
