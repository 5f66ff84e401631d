"""Replace the airspace at runtime: diff old and new, and find flights the change affects."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nestd.airspace.airspace import Airspace
from nestd.airspace.errors import AirspaceError
from nestd.airspace.geo import LatLon
from nestd.airspace.loader import parse_airspace
from nestd.airspace.mission import Violation, ViolationKind, validate_mission
from nestd.airspace.model import Zone
from nestd.airspace.timewin import Instant
from nestd.airspace.waypoints import AltFrame, Waypoint

_KEEP_IN_KINDS = frozenset(
    {ViolationKind.OUTSIDE_KEEP_IN, ViolationKind.KEEP_IN_MARGIN, ViolationKind.ABOVE_CEILING}
)


@dataclass(frozen=True, slots=True)
class AirspaceDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    keep_in_changed: bool = False
    sites_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.added or self.removed or self.changed or self.keep_in_changed or self.sites_changed
        )

    @property
    def stricter_ids(self) -> frozenset[str]:
        """Zones that can newly forbid something (removals only relax)."""
        return frozenset(self.added) | frozenset(self.changed)


def _same_zone(a: Zone, b: Zone) -> bool:
    return (
        a.floor_m == b.floor_m
        and a.ceiling_m == b.ceiling_m
        and a.schedule == b.schedule
        and a.name == b.name
        and a.geometry.equals_exact(b.geometry, 1e-6)
    )


def diff_airspace(old: Airspace, new: Airspace) -> AirspaceDiff:
    """Which keep-outs were added, removed or changed, and whether the keep-in or sites moved."""
    o = {z.id: z for z in old.zones}
    n = {z.id: z for z in new.zones}
    same_frame = old.nest.position == new.nest.position
    changed = tuple(
        sorted(k for k in o.keys() & n.keys() if not same_frame or not _same_zone(o[k], n[k]))
    )
    keep_in_changed = not same_frame or not (
        old.keep_in.geometry.equals_exact(new.keep_in.geometry, 1e-6)
        and old.keep_in.ceiling_m == new.keep_in.ceiling_m
    )
    return AirspaceDiff(
        added=tuple(sorted(n.keys() - o.keys())),
        removed=tuple(sorted(o.keys() - n.keys())),
        changed=changed,
        keep_in_changed=keep_in_changed or old.margins != new.margins,
        sites_changed=_sites(old) != _sites(new),
    )


def _sites(a: Airspace) -> set[tuple[str, LatLon]]:
    return {(s.id, s.position) for s in (a.nest, *a.pads, *a.safe_landing_sites)}


@dataclass(frozen=True, slots=True)
class ActiveFlight:
    """What is left of a flight in the air: where it is and the waypoints still to fly."""

    flight_id: str
    position: LatLon
    alt_rel_m: float
    remaining: Sequence[Waypoint]
    return_alt_m: float | None = None


@dataclass(frozen=True, slots=True)
class AffectedFlight:
    flight_id: str
    violations: tuple[Violation, ...]

    @property
    def feature_ids(self) -> frozenset[str]:
        return frozenset(v.feature_id for v in self.violations if v.feature_id)


def affected_flights(
    new: Airspace,
    diff: AirspaceDiff,
    flights: Sequence[ActiveFlight],
    now: Instant,
    *,
    flight_duration_s: float = 1800.0,
) -> list[AffectedFlight]:
    """Flights whose remaining path the update makes illegal (for reroute or hold).

    Only violations caused by the update are reported: a flight already in a
    zone's margin before the update is the monitor's business, not news.
    """
    out: list[AffectedFlight] = []
    stricter = diff.stricter_ids
    for f in flights:
        wps = [
            Waypoint(f.position.lat_deg, f.position.lon_deg, f.alt_rel_m, AltFrame.RELATIVE_HOME),
            *f.remaining,
        ]
        vs = validate_mission(
            new,
            wps,
            now,
            flight_duration_s=flight_duration_s,
            from_home=False,
            return_alt_m=f.return_alt_m,
        )
        mine = tuple(
            v
            for v in vs
            if (v.feature_id in stricter) or (diff.keep_in_changed and v.kind in _KEEP_IN_KINDS)
        )
        if mine:
            out.append(AffectedFlight(f.flight_id, mine))
    return out


@dataclass(frozen=True, slots=True)
class AirspaceUpdate:
    """Outcome of a replacement attempt; on rejection the old airspace stays in force."""

    accepted: bool
    diff: AirspaceDiff
    affected: tuple[AffectedFlight, ...] = ()
    error: AirspaceError | None = None


class AirspaceKeeper:
    """Holds the airspace in force and swaps it only for a fully valid replacement."""

    def __init__(self, initial: Airspace) -> None:
        self._current = initial

    @property
    def current(self) -> Airspace:
        return self._current

    def replace(
        self,
        build: Callable[[], Airspace],
        now: Instant,
        flights: Sequence[ActiveFlight] = (),
    ) -> AirspaceUpdate:
        """Build the new airspace; keep the old one if building raises AirspaceError."""
        try:
            new = build()
        except AirspaceError as exc:
            return AirspaceUpdate(False, AirspaceDiff(), (), exc)
        diff = diff_airspace(self._current, new)
        affected = tuple(affected_flights(new, diff, flights, now)) if not diff.empty else ()
        self._current = new
        return AirspaceUpdate(True, diff, affected)

    def replace_from_document(
        self,
        doc: str | bytes | Mapping[str, Any],
        now: Instant,
        flights: Sequence[ActiveFlight] = (),
        *,
        source: str = "<update>",
        base_dir: Path | None = None,
        ed269_docs: Mapping[str, Any] | None = None,
    ) -> AirspaceUpdate:
        """Replace from a store file's text (file watcher) or parsed JSON (MQTT topic)."""
        margins = self._current.margins
        return self.replace(
            lambda: parse_airspace(
                doc, source=source, base_dir=base_dir, margins=margins, ed269_docs=ed269_docs
            ),
            now,
            flights,
        )
