"""When a zone is active: absolute periods and recurring daily hours in a given timezone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from nestd.airspace.errors import AirspaceTimeError

Instant = datetime | float
"""A timezone-aware datetime, or POSIX epoch seconds (UTC)."""


def to_utc(t: Instant) -> datetime:
    """Normalise an instant to an aware UTC datetime; naive datetimes are refused."""
    if isinstance(t, datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise AirspaceTimeError(
                f"naive datetime {t.isoformat()} has no timezone; pass an aware datetime "
                "or epoch seconds"
            )
        return t.astimezone(UTC)
    return datetime.fromtimestamp(float(t), tz=UTC)


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Hours [start, end) on weekdays (0 = Monday) in `tz`; end <= start wraps past midnight."""

    weekdays: frozenset[int]
    start: time
    end: time
    tz: tzinfo

    def _occurrences(self, t0: datetime, t1: datetime) -> list[tuple[datetime, datetime]]:
        first = t0.astimezone(self.tz).date() - timedelta(days=1)
        last = t1.astimezone(self.tz).date()
        out: list[tuple[datetime, datetime]] = []
        d: date = first
        while d <= last:
            if d.weekday() in self.weekdays:
                end_day = d if self.end > self.start else d + timedelta(days=1)
                s = datetime.combine(d, self.start, self.tz)
                e = datetime.combine(end_day, self.end, self.tz)
                out.append((s.astimezone(UTC), e.astimezone(UTC)))
            d += timedelta(days=1)
        return out

    def overlaps(self, t0: datetime, t1: datetime) -> bool:
        """True if any occurrence [s, e) meets the closed interval [t0, t1]."""
        return any(s <= t1 and e > t0 for s, e in self._occurrences(t0, t1))


@dataclass(frozen=True, slots=True)
class Applicability:
    """An optional absolute period [start, end), narrowed by optional daily windows."""

    start: datetime | None = None
    end: datetime | None = None
    daily: tuple[DailyWindow, ...] = ()

    def overlaps(self, t0: datetime, t1: datetime) -> bool:
        lo = t0 if self.start is None else max(t0, self.start)
        hi = t1 if self.end is None else min(t1, self.end)
        if self.end is not None and hi >= self.end:
            # [start, end) is half-open: the end instant itself is inactive.
            hi = self.end - timedelta(microseconds=1)
        if lo > hi:
            return False
        if not self.daily:
            return True
        return any(w.overlaps(lo, hi) for w in self.daily)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A zone is active when any applicability is; no applicabilities means always."""

    periods: tuple[Applicability, ...] = ()

    @property
    def always(self) -> bool:
        return not self.periods

    def active_during(self, start: Instant, end: Instant | None = None) -> bool:
        t0 = to_utc(start)
        t1 = t0 if end is None else to_utc(end)
        if t1 < t0:
            raise AirspaceTimeError(f"interval ends ({t1}) before it starts ({t0})")
        if not self.periods:
            return True
        return any(p.overlaps(t0, t1) for p in self.periods)

    def active_at(self, t: Instant) -> bool:
        return self.active_during(t, None)
