"""Wind limits with hysteresis: a ground stop over the limit, resuming only after a calm spell."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nestd.safety.airframe import Airframe
from nestd.safety.errors import SafetyInputError


class WindLimits(BaseModel):
    """When wind stops launches and when they may resume."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sustained_limit_mps: float = Field(10.0, gt=0, description="Mean wind limit, m/s.")
    gust_limit_mps: float = Field(12.0, gt=0, description="Gust limit, m/s.")
    resume_fraction: float = Field(
        0.8, gt=0, lt=1, description="Resume only while both are below this share of the limit."
    )
    resume_after_s: float = Field(
        600.0, ge=0, description="...continuously for this long after a ground stop, s."
    )
    source_fresh_s: float = Field(
        120.0, gt=0, description="A source's last sample counts for this long, s."
    )

    @model_validator(mode="after")
    def _gust_over_sustained(self) -> WindLimits:
        if self.gust_limit_mps < self.sustained_limit_mps:
            raise ValueError("gust_limit_mps must be at least sustained_limit_mps")
        return self

    @classmethod
    def for_airframe(cls, airframe: Airframe, **overrides: float) -> WindLimits:
        """The airframe's limits; the strictest airframe in the fleet should set the nest's."""
        return cls(
            sustained_limit_mps=airframe.max_wind_sustained_mps,
            gust_limit_mps=airframe.max_wind_gust_mps,
            **overrides,
        )


class WindState(StrEnum):
    NO_DATA = "no_data"  # nothing fresh from any source: launches wait
    CLEAR = "clear"  # launches allowed
    GROUND_STOP = "ground_stop"  # over a limit, or not yet back below the resume threshold
    RESUMING = "resuming"  # below the resume threshold, counting down; still no launches


@dataclass(frozen=True, slots=True)
class WindSample:
    """One wind report: a vehicle's estimate (WIND_COV) or the nest's anemometer."""

    time_s: float
    speed_mps: float
    """Mean (sustained) wind as the source reports it."""
    gust_mps: float | None
    """Peak gust, if the source measures one."""
    source: str

    @classmethod
    def from_vector(
        cls,
        time_s: float,
        north_mps: float,
        east_mps: float,
        source: str,
        gust_mps: float | None = None,
    ) -> WindSample:
        """From a vehicle's estimate (VehicleState.wind: north/east components, NED)."""
        return cls(time_s, math.hypot(north_mps, east_mps), gust_mps, source)

    def __post_init__(self) -> None:
        ok = math.isfinite(self.time_s) and math.isfinite(self.speed_mps) and self.speed_mps >= 0
        if self.gust_mps is not None:
            ok = ok and math.isfinite(self.gust_mps) and self.gust_mps >= 0
        if not ok:
            raise SafetyInputError(f"unusable wind sample: {self!r}")


@dataclass(frozen=True, slots=True)
class WindStatus:
    state: WindState
    changed: bool
    """The state differs from the one before this call."""
    sustained_mps: float | None
    gust_mps: float | None
    """Worst of the fresh sources (a sample without gust counts its mean as gust)."""
    reason: str
    resume_at_s: float | None = None
    """In RESUMING: when launches may resume if the wind stays calm."""

    @property
    def launches_allowed(self) -> bool:
        return self.state is WindState.CLEAR


class WindMonitor:
    """The nest's wind state machine; time comes in with each sample or tick."""

    def __init__(self, limits: WindLimits | None = None) -> None:
        self.limits = limits or WindLimits()
        self.state = WindState.NO_DATA
        self._latest: dict[str, WindSample] = {}
        self._calm_since_s: float | None = None
        self._now_s = -math.inf

    def update(self, sample: WindSample) -> WindStatus:
        """Take one sample; older samples than a source's last one are ignored (reordering)."""
        last = self._latest.get(sample.source)
        if last is None or sample.time_s >= last.time_s:
            self._latest[sample.source] = sample
        return self.tick(sample.time_s)

    def tick(self, now_s: float) -> WindStatus:
        """Re-evaluate at `now_s` (drops stale sources, completes a resume countdown)."""
        now_s = max(now_s, self._now_s)  # a late sample never moves time backwards
        self._now_s = now_s
        lim = self.limits
        fresh = [s for s in self._latest.values() if now_s - s.time_s <= lim.source_fresh_s]
        before = self.state
        if not fresh:
            # Losing the wind feed never lifts a ground stop: only data showing calm does.
            if self.state is WindState.CLEAR:
                self.state = WindState.NO_DATA
            elif self.state is WindState.RESUMING:
                self.state = WindState.GROUND_STOP
                self._calm_since_s = None
            return WindStatus(
                self.state, self.state is not before, None, None, "no fresh wind data"
            )

        sustained = max(s.speed_mps for s in fresh)
        gust = max(max(s.speed_mps, s.gust_mps or 0.0) for s in fresh)
        over = sustained > lim.sustained_limit_mps or gust > lim.gust_limit_mps
        calm = (
            sustained < lim.resume_fraction * lim.sustained_limit_mps
            and gust < lim.resume_fraction * lim.gust_limit_mps
        )
        figures = f"sustained {sustained:.1f}/{lim.sustained_limit_mps:.1f} m/s, "
        figures += f"gust {gust:.1f}/{lim.gust_limit_mps:.1f} m/s"
        resume_at: float | None = None

        if over:
            self.state = WindState.GROUND_STOP
            self._calm_since_s = None
            reason = f"over the limit: {figures}"
        elif self.state in (WindState.CLEAR, WindState.NO_DATA):
            # Under the limit: between the resume threshold and the limit is no reason to stop.
            self.state = WindState.CLEAR
            reason = f"within limits: {figures}"
        elif not calm:
            # A gust back above the resume threshold restarts the calm spell from zero.
            self.state = WindState.GROUND_STOP
            self._calm_since_s = None
            pct = int(round(lim.resume_fraction * 100))
            reason = f"not yet below {pct}% of the limit: {figures}"
        else:
            if self._calm_since_s is None:
                self._calm_since_s = now_s
            resume_at = self._calm_since_s + lim.resume_after_s
            if now_s >= resume_at:
                self.state = WindState.CLEAR
                reason = f"calm for {lim.resume_after_s:.0f} s: {figures}"
                resume_at = None
            else:
                self.state = WindState.RESUMING
                reason = f"calm, resuming in {resume_at - now_s:.0f} s: {figures}"
        return WindStatus(self.state, self.state is not before, sustained, gust, reason, resume_at)
