"""Live airspace updates: the store file is re-read when it changes, and a valid new version
replaces the old one everywhere at once (quotes, dispatch, mission checks).

An invalid file never replaces a valid airspace: the old one stays in force and the problem
is logged. Flights in the air whose way ahead the update makes illegal are reported to the
executor, which decides what the drone does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from nestd.airspace import ActiveFlight, AffectedFlight, Airspace, AirspaceKeeper, AirspaceUpdate

log = structlog.get_logger("nestd.jobs.airspace")

OnSwap = Callable[[Airspace], None]
OnAffected = Callable[[Sequence[AffectedFlight]], None]


class AirspaceWatcher:
    def __init__(self, keeper: AirspaceKeeper, path: Path, *,
                 flights: Callable[[], Sequence[ActiveFlight]] = tuple,
                 on_swap: OnSwap = lambda a: None,
                 on_affected: OnAffected = lambda fs: None,
                 poll_s: float = 5.0, wall_clock: Callable[[], float] = time.time) -> None:
        self.keeper = keeper
        self.path = path
        self.flights = flights
        self.on_swap = on_swap
        self.on_affected = on_affected
        self.poll_s = poll_s
        self.wall_clock = wall_clock
        self._seen = self._stamp()
        self.updates = 0
        self.rejected = 0

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check(self) -> AirspaceUpdate | None:
        """Re-read the file if it changed since the last look; None when it didn't."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return None
        self._seen = stamp
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            self.rejected += 1
            log.error("airspace_unreadable", path=str(self.path), error=str(exc))
            return None
        update = self.keeper.replace_from_document(
            text, self.wall_clock(), self.flights(), source=str(self.path),
            base_dir=self.path.parent)
        if not update.accepted:
            self.rejected += 1
            log.error("airspace_update_rejected", path=str(self.path), error=str(update.error),
                      kept="the previous airspace stays in force")
            return update
        self.updates += 1
        d = update.diff
        log.warning("airspace_updated", path=str(self.path), added=list(d.added),
                    removed=list(d.removed), changed=list(d.changed),
                    keep_in_changed=d.keep_in_changed, sites_changed=d.sites_changed,
                    affected_flights=[f.flight_id for f in update.affected])
        self.on_swap(self.keeper.current)
        if update.affected:
            self.on_affected(update.affected)
        return update

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self.check()
            except Exception:
                log.exception("airspace_watch_failed")
