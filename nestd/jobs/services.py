"""Builds the job services from the daemon config: journal, book, quoter, executor,
dispatcher and the MQTT job API, sharing one airspace and one fleet link."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nestd.airspace import Airspace, load_airspace
from nestd.config import DaemonConfig
from nestd.jobs.api import JobApi
from nestd.jobs.book import JobBook
from nestd.jobs.dispatch import DispatchSettings
from nestd.jobs.dispatcher import Dispatcher
from nestd.jobs.executor import ExecutorSettings, FlightExecutor
from nestd.jobs.journal import Journal
from nestd.jobs.quote import Quoter, QuoteSettings
from nestd.mavlink.link import FleetLink
from nestd.telemetry import Topics


@dataclass
class JobServices:
    airspace: Airspace
    journal: Journal
    book: JobBook
    quoter: Quoter
    executor: FlightExecutor
    dispatcher: Dispatcher
    api: JobApi

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
        holder = _AirspaceRef(airspace)
        executor = FlightExecutor(book, link, holder.get, config.airframe,
                                  ExecutorSettings(reattach_wait_s=j.reattach_wait_s))
        dispatcher = Dispatcher(
            book, quoter, executor, link, holder.get, config.airframe,
            DispatchSettings(decline_if_late=j.decline_if_late,
                             launch_spacing_s=j.launch_spacing_s,
                             assign_ahead_s=j.assign_ahead_s),
            turnaround_s=j.turnaround_s,
        )
        api = JobApi(book, topics, config.store_id, cancels=executor, quotes=dispatcher,
                     share_group=j.share_group, max_payload_bytes=j.max_payload_bytes)
        return cls(airspace, journal, book, quoter, executor, dispatcher, api)

    def close(self) -> None:
        self.journal.close()


class _AirspaceRef:
    """The current airspace; a live update swaps it for every user at once."""

    def __init__(self, airspace: Airspace) -> None:
        self.airspace = airspace

    def get(self) -> Airspace:
        return self.airspace
