"""Live airspace updates from the store file: valid changes swap in, bad files never do."""

from __future__ import annotations

from pathlib import Path

from nestd.airspace import (
    ActiveFlight,
    AffectedFlight,
    Airspace,
    AirspaceKeeper,
    LatLon,
    LocalFrame,
    Waypoint,
    load_airspace,
)
from nestd.jobs.airspace_watch import AirspaceWatcher
from tests.jobs.store import write_store

HOME = (33.1507, -96.8236)
FRAME = LocalFrame(LatLon(*HOME))


def at(east_m: float, north_m: float) -> LatLon:
    lon, lat = FRAME.to_wgs84(east_m, north_m)
    return LatLon(float(lat), float(lon))


def setup(tmp_path: Path) -> tuple[Path, AirspaceKeeper, list[Airspace],
                                   list[AffectedFlight], AirspaceWatcher]:
    path = write_store(tmp_path / "store.geojson", HOME, [HOME])
    keeper = AirspaceKeeper(load_airspace(path))
    swapped: list[Airspace] = []
    affected: list[AffectedFlight] = []
    north = at(0, 800)
    flight = ActiveFlight("job-1", at(0, 100), 40.0, [Waypoint(north.lat_deg, north.lon_deg, 40.0)])
    watcher = AirspaceWatcher(keeper, path, flights=lambda: [flight], on_swap=swapped.append,
                              on_affected=affected.extend, wall_clock=lambda: 0.0)
    return path, keeper, swapped, affected, watcher


def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    _, keeper, swapped, _, watcher = setup(tmp_path)
    before = keeper.current
    assert watcher.check() is None
    assert keeper.current is before and swapped == []


def test_a_new_keep_out_swaps_in_and_reports_the_flight_it_blocks(tmp_path: Path) -> None:
    path, keeper, swapped, affected, watcher = setup(tmp_path)
    write_store(path, HOME, [HOME], keep_outs=[(0.0, 450.0, 80.0)])
    update = watcher.check()
    assert update is not None and update.accepted
    assert update.diff.added == ("ko-1",)
    assert swapped == [keeper.current] and [z.id for z in keeper.current.zones] == ["ko-1"]
    assert [f.flight_id for f in affected] == ["job-1"]
    assert "ko-1" in affected[0].feature_ids
    assert watcher.check() is None  # seen


def test_an_invalid_file_keeps_the_airspace_in_force(tmp_path: Path) -> None:
    path, keeper, swapped, _, watcher = setup(tmp_path)
    before = keeper.current
    path.write_text('{"type": "FeatureCollection", "features": [], "format": 1}')
    update = watcher.check()
    assert update is not None and not update.accepted and update.error is not None
    assert keeper.current is before and swapped == [] and watcher.rejected == 1
    path.write_bytes(b"\xff\xfe not text")
    assert watcher.check() is None and watcher.rejected == 2
    assert keeper.current is before


def test_a_removed_file_changes_nothing(tmp_path: Path) -> None:
    path, keeper, swapped, _, watcher = setup(tmp_path)
    before = keeper.current
    path.unlink()
    assert watcher.check() is None
    assert keeper.current is before and swapped == []
