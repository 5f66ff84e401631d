"""Builds the job services from the daemon config: journal, book, quoter, executor,
dispatcher and the MQTT job API, sharing one airspace and one fleet link."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from nestd.airspace import (
    ActiveFlight,
    AffectedFlight,
    Airspace,
    AirspaceKeeper,
    LatLon,
    Waypoint,
    load_airspace,
)
from nestd.config import DaemonConfig
from nestd.jobs.airspace_watch import AirspaceWatcher
from nestd.jobs.api import JobApi
from nestd.jobs.book import JobBook
from nestd.jobs.dispatch import DispatchSettings
from nestd.jobs.dispatcher import Dispatcher
from nestd.jobs.executor import ExecutorSettings, FlightExecutor
from nestd.jobs.journal import Journal
from nestd.jobs.quote import Quoter, QuoteSettings
from nestd.mavlink.link import FleetLink
from nestd.telemetry import Topics

log = structlog.get_logger("nestd.jobs")


@dataclass
class JobServices:
    airspace: Airspace
    journal: Journal
    book: JobBook
    quoter: Quoter
    executor: FlightExecutor
    dispatcher: Dispatcher
    api: JobApi
    keeper: AirspaceKeeper
    watcher: AirspaceWatcher | None

    @classmethod
    def build(cls, config: DaemonConfig, link: FleetLink,
              airspace: Airspace | None = None) -> JobServices:
        assert config.airspace is not None or airspace is not None
        if airspace is None:
            assert config.airspace is not None
            airspace = load_airspace(config.airspace.file)
        j = config.jobs
        topics = Topics(config.store_id)
        journal = Journal.in_state_dir(config.state_dir)
        book = JobBook(journal, topics, time.time)
        quoter = Quoter(airspace, QuoteSettings(
            max_parcel_dims_cm=j.max_parcel_dims_cm,
            turnaround_s=j.turnaround_s,
            launch_spacing_s=j.launch_spacing_s,
            valid_for_s=j.quote_valid_for_s,
        ))
        keeper = AirspaceKeeper(airspace)

        def current() -> Airspace:
            return keeper.current

        executor = FlightExecutor(book, link, current, config.airframe,
                                  ExecutorSettings(reattach_wait_s=j.reattach_wait_s))
        dispatcher = Dispatcher(
            book, quoter, executor, link, current, config.airframe,
            DispatchSettings(decline_if_late=j.decline_if_late,
                             launch_spacing_s=j.launch_spacing_s,
                             assign_ahead_s=j.assign_ahead_s),
            turnaround_s=j.turnaround_s,
        )
        api = JobApi(book, topics, config.store_id, cancels=executor, quotes=dispatcher,
                     share_group=j.share_group, max_payload_bytes=j.max_payload_bytes)
        watcher = None
        if config.airspace is not None:
            watcher = AirspaceWatcher(
                keeper, config.airspace.file,
                flights=lambda: active_flights(executor),
                on_swap=quoter.swap_airspace,
                on_affected=_report_affected,
                poll_s=config.airspace.reload_poll_s,
            )
        return cls(airspace, journal, book, quoter, executor, dispatcher, api, keeper, watcher)

    def close(self) -> None:
        self.journal.close()


def active_flights(executor: FlightExecutor) -> list[ActiveFlight]:
    """The way ahead of each flight, coarsely: to the door (if the parcel is still aboard)
    and back to the pad, in straight lines at the flight's altitude."""
    out = []
    for f in list(executor.flights.values()):
        v = executor.link.vehicles.get(f.drone)
        s = v.state if v is not None else None
        if s is None or s.lat_deg is None or s.lon_deg is None or f.launched_at_s is None:
            continue
        alt = max(s.alt_rel_m or 0.0, 0.0)
        ahead = [Waypoint(f.pad.lat_deg, f.pad.lon_deg, alt)]
        seq = s.mission.current_seq
        if seq is None or seq <= f.release_seq:
            ahead.insert(0, Waypoint(f.destination.lat_deg, f.destination.lon_deg, alt))
        out.append(ActiveFlight(f.order_id, LatLon(s.lat_deg, s.lon_deg), alt, ahead))
    return out


def _report_affected(flights: Sequence[AffectedFlight]) -> None:
    # What the drone does about it is the safety monitor's decision, which does not exist
    # yet; until then the operator is told, loudly.
    for f in flights:
        log.error("flight_path_now_illegal", order_id=f.flight_id,
                  zones=sorted(f.feature_ids))
