"""The dispatcher's fleet view takes the nest's wind: a strong airborne estimate holds every
launch with a `wind` reason, and the planning wind is what the drones measured."""

from __future__ import annotations

import time
from pathlib import Path

from nestd.config import AirspaceConfig, DaemonConfig
from nestd.jobs.services import JobServices
from nestd.mavlink.config import EndpointConfig, LinkConfig
from nestd.mavlink.link import FleetLink
from tests.jobs.store import write_store

HOME = (33.1507, -96.8236)


def services(tmp_path: Path) -> JobServices:
    store = write_store(tmp_path / "store.geojson", HOME, [HOME])
    config = DaemonConfig(
        store_id="wind-test", state_dir=tmp_path / "state",
        mavlink=LinkConfig(endpoints=[EndpointConfig(name="x", kind="udp_listen", port=1)]),
        airspace=AirspaceConfig(file=store),
    )
    link = FleetLink(config.mavlink)  # not started: no vehicles, no sockets
    return JobServices.build(config, link)


def test_calm_until_a_drone_measures_wind_then_a_strong_estimate_holds_launches(
    tmp_path: Path,
) -> None:
    js = services(tmp_path)
    try:
        d = js.dispatcher
        view = d.fleet_view()
        assert view.launches_allowed and view.wind.speed_mps == 0.0
        now = time.time()
        d.wind.observe("drone-1", now, 4.0, 3.0, 0.3, airborne=True)
        view = d.fleet_view()
        assert view.launches_allowed and view.wind.speed_mps == 5.0
        d.wind.observe("drone-1", time.time(), 14.0, 0.0, 0.3, airborne=True)
        view = d.fleet_view()
        assert not view.launches_allowed
        assert view.hold_code == "wind" and view.hold_reason is not None
        assert "over the limit" in view.hold_reason
    finally:
        js.close()


def test_a_stopping_daemon_holds_launches_as_a_ground_stop(tmp_path: Path) -> None:
    js = services(tmp_path)
    try:
        js.dispatcher.paused = True
        view = js.dispatcher.fleet_view()
        assert not view.launches_allowed and view.hold_code == "ground_stop"
    finally:
        js.close()
