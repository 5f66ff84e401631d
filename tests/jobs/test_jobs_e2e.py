"""Jobs end to end: orders over a real mosquitto, the daemon, and a nestsim fleet over UDP."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from nestsim.fleet import DEFAULT_HOME, Fleet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nestd.airspace import LatLon, LocalFrame
from nestd.config import AirspaceConfig, DaemonConfig, JobsConfig, MqttConfig
from nestd.daemon import Daemon, ShutdownSettings, build_daemon
from nestd.mavlink.config import EndpointConfig, LinkConfig
from tests.conftest import Broker, fleet_config
from tests.jobs.store import write_store
from tests.sim.gcs import until

HAPPY_PATH = ["received", "accepted", "queued", "assigned", "preflight", "launched", "enroute",
              "delivering", "delivered", "returning", "landed", "completed"]
FRAME = LocalFrame(LatLon(DEFAULT_HOME[0], DEFAULT_HOME[1]))


def at(east_m: float, north_m: float) -> tuple[float, float]:
    lon, lat = FRAME.to_wgs84(east_m, north_m)
    return round(float(lat), 7), round(float(lon), 7)


def job(store: str, order_id: str, east_m: float, north_m: float, *, mass_kg: float = 1.0,
        in_s: float = 3600.0) -> dict[str, Any]:
    lat, lon = at(east_m, north_m)
    return {
        "order_id": order_id, "store_id": store,
        "destination": {"lat_deg": lat, "lon_deg": lon},
        "parcel": {"mass_kg": mass_kg},
        "promised_by": (datetime.now(UTC) + timedelta(seconds=in_s)).isoformat(),
    }


@dataclass
class Watcher:
    """A retailer-side client: every message under the store's job topics, by topic."""

    store: str
    seen: dict[str, list[bytes]] = field(default_factory=dict)

    def statuses(self, order_id: str) -> list[dict[str, Any]]:
        return [orjson.loads(p)
                for p in self.seen.get(f"nest/{self.store}/jobs/{order_id}/events", [])]

    def states(self, order_id: str) -> list[str]:
        return [s["state"] for s in self.statuses(order_id)]

    def last_state(self, order_id: str) -> str | None:
        st = self.states(order_id)
        return st[-1] if st else None


def pad_positions(vehicles: int) -> list[tuple[float, float]]:
    """(lat, lon) of each drone's pad: a row going east from the nest, 6 m apart."""
    return [at(6.0 * i, 0.0) for i in range(vehicles)]


class Rig:
    """A nest under test: the broker session of a retailer-side client, a nestsim fleet that
    keeps flying, and a daemon that can be stopped and started again on the same state dir."""

    def __init__(self, config: DaemonConfig, fleet: Fleet, watcher: Watcher,
                 client: aiomqtt.Client, vehicles: int) -> None:
        self.config = config
        self.fleet = fleet
        self.watcher = watcher
        self.client = client
        self.vehicles = vehicles
        self.daemon: Daemon | None = None
        self._run: asyncio.Task[None] | None = None
        self.starts = 0

    @property
    def store(self) -> str:
        return self.config.store_id

    async def start(self) -> Daemon:
        """A new daemon from the same config (same state dir, broker client id and ports)."""
        assert self._run is None, "the daemon is already running"
        daemon = build_daemon(self.config)
        daemon.shutdown = ShutdownSettings(grace_s=60)
        self.daemon = daemon
        self.starts += 1
        run = self._run = asyncio.create_task(daemon.run(), name=f"daemon-{self.starts}")

        def up() -> bool:
            ready = [v for v in daemon.link.vehicles.values() if v.ready]
            return daemon.broker_connected and len(ready) == self.vehicles

        await until(lambda: up() or run.done(), 20, "daemon connected to broker and fleet")
        if run.done():
            run.result()  # the daemon ended while starting: show why
            raise AssertionError("the daemon ended while starting")
        await self.ping()
        return daemon

    async def ping(self) -> None:
        """A quote round trip: the daemon's job API is subscribed and taking messages."""
        topic = f"e2e-ping/{self.store}/{uuid.uuid4().hex[:8]}"
        await self.client.subscribe(topic, qos=1)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = topic
        await self.client.publish(f"nest/{self.store}/quote/request",
                                  orjson.dumps(job(self.store, "ping", 10, 10)), qos=1,
                                  properties=props)
        await until(lambda: topic in self.watcher.seen, 10, "the daemon answered a quote")

    async def stop(self, *, force: bool = False) -> None:
        """Stop the daemon: normally (it waits for airborne drones to land) or, with `force`,
        at once, leaving drones in the air to the next daemon."""
        if self.daemon is None or self._run is None:
            return
        self.daemon.request_stop()
        if force:
            self.daemon.request_stop()
        try:
            await asyncio.wait_for(self._run, 20 if force else 90)
        finally:
            self._run = None


@contextlib.asynccontextmanager
async def rig(broker: Broker, tmp_path: Path, vehicles: int, *, speed: float = 10.0,
              jobs: JobsConfig | None = None, keep_outs: list[tuple[float, float, float]] = (),
              state_dir: Path | None = None, store: str | None = None) -> AsyncIterator[Rig]:
    store = store or f"e2e-{uuid.uuid4().hex[:8]}"
    pads = pad_positions(vehicles)
    sim_cfg = fleet_config(vehicles, speed=speed, pads=pads, payload_kg=1.0,
                           reload_payload=True)
    assert sim_cfg.api_remote_ports is not None
    airspace = write_store(tmp_path / "store.geojson", DEFAULT_HOME[:2], pads, store_id=store,
                           keep_outs=list(keep_outs))
    config = DaemonConfig(
        store_id=store,
        state_dir=state_dir or tmp_path / "state",
        mqtt=MqttConfig(host=broker.host, port=broker.port),
        # The GCS heartbeat at the sim's pace: the vehicles' datalink-loss failsafe (which
        # nestd enforces before each flight) counts simulated seconds.
        mavlink=LinkConfig(heartbeat_interval_s=0.5 / speed, endpoints=[
            EndpointConfig(name=f"sim{i}", kind="udp_listen", port=p)
            for i, p in enumerate(sim_cfg.api_remote_ports)]),
        airspace=AirspaceConfig(file=airspace),
        jobs=jobs or JobsConfig(launch_spacing_s=0.5, turnaround_s=0.0),
    )
    watcher = Watcher(store)
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(f"nest/{store}/jobs/#", qos=1)
        await client.subscribe(f"nest/{store}/deadletter", qos=1)
        await client.subscribe(f"nest/{store}/quote/#", qos=1)

        async def collect() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                async for m in client.messages:
                    watcher.seen.setdefault(m.topic.value, []).append(
                        bytes(m.payload))  # type: ignore[arg-type]

        collector = asyncio.create_task(collect(), name="collector")
        async with Fleet(sim_cfg) as fleet:
            r = Rig(config, fleet, watcher, client, vehicles)
            try:
                await r.start()
                yield r
            finally:
                await r.stop(force=True)
        collector.cancel()


@contextlib.asynccontextmanager
async def nest(broker: Broker, tmp_path: Path, vehicles: int, *, speed: float = 10.0,
               jobs: JobsConfig | None = None, keep_outs: list[tuple[float, float, float]] = (),
               state_dir: Path | None = None,
               ) -> AsyncIterator[tuple[Daemon, Fleet, Watcher, aiomqtt.Client]]:
    async with rig(broker, tmp_path, vehicles, speed=speed, jobs=jobs, keep_outs=keep_outs,
                   state_dir=state_dir) as r:
        assert r.daemon is not None
        yield r.daemon, r.fleet, r.watcher, r.client


async def submit(client: aiomqtt.Client, body: dict[str, Any] | bytes, store: str) -> None:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    await client.publish(f"nest/{store}/jobs/submit", payload, qos=1)


async def test_ten_jobs_on_three_drones_are_all_delivered_with_their_whole_history(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with nest(mosquitto, tmp_path, 3, keep_outs=[(0.0, 250.0, 60.0)]) as (
            _daemon, fleet, w, client):
        spots = [(0, 400), (300, 300), (-350, 200), (250, -300), (-200, -350),
                 (450, 0), (-450, 0), (100, 500), (-100, -450), (350, 150)]
        orders = [f"o-{i}" for i in range(len(spots))]
        for oid, (e, n) in zip(orders, spots, strict=True):
            await submit(client, job(w.store, oid, e, n), w.store)
        await until(lambda: all(w.last_state(o) in ("completed", "failed", "aborted", "declined")
                                for o in orders), 240, "every job ended")
        for o in orders:
            history = w.statuses(o)
            assert [s["state"] for s in history] == HAPPY_PATH, (o, history)
            assert [s["seq"] for s in history] == list(range(1, len(HAPPY_PATH) + 1))
            assert len({s["drone"] for s in history if "drone" in s}) == 1
        drops = [d for v in fleet.vehicles for d in v.drops]
        assert len(drops) == len(orders)
        # Each event goes out on the events topic, then as the retained status: wait for the
        # last status messages to arrive too.
        def retained_state(o: str) -> str:
            return str(orjson.loads(w.seen[f"nest/{w.store}/jobs/{o}/status"][-1])["state"])

        await until(lambda: all(retained_state(o) == "completed" for o in orders), 10,
                    "every retained status says completed")


async def test_a_job_submitted_five_times_flies_once(mosquitto: Broker, tmp_path: Path) -> None:
    async with nest(mosquitto, tmp_path, 1) as (daemon, fleet, w, client):
        body = job(w.store, "dup-1", 200, 200)
        for _ in range(5):
            await submit(client, body, w.store)
        await until(lambda: w.last_state("dup-1") == "completed", 120, "job completed")
        assert w.states("dup-1") == HAPPY_PATH
        assert len(fleet.vehicles[0].drops) == 1
        # Before flying, nestd set the profile's failsafes on the drone (nestsim starts, as
        # stock PX4 does, with datalink loss doing nothing and a breach only holding).
        params = fleet.vehicles[0].params
        assert (params["NAV_DLL_ACT"], params["GF_ACTION"], params["COM_LOW_BAT_ACT"]) == (
            2, 3, 3)
        assert daemon.jobs is not None
        assert [r.order_id for r in daemon.jobs.journal.active()] == []


async def test_bad_submissions_are_rejected_with_reasons_and_kept_in_the_dead_letter_topic(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with nest(mosquitto, tmp_path, 1) as (_daemon, _fleet, w, client):
        good = job(w.store, "ok-1", 100, 100)
        bad = [b"not json", b"{\"order_id\": \"x\"}", orjson.dumps({**good, "store_id": "other"}),
               orjson.dumps({**good, "parcel": {"mass_kg": -1}})]
        for raw in bad:
            await submit(client, raw, w.store)
        await until(lambda: len(w.seen.get(f"nest/{w.store}/jobs/rejected", [])) == len(bad),
                    10, "a rejection for each bad message")
        await until(lambda: w.seen.get(f"nest/{w.store}/deadletter", []) == bad, 10,
                    "every raw payload in the dead-letter topic, in order")
        rejections = [orjson.loads(p) for p in w.seen[f"nest/{w.store}/jobs/rejected"]]
        assert all(r["reasons"] for r in rejections)
        assert rejections[2]["reasons"][0]["code"] == "wrong_store"
        # The daemon is still taking jobs.
        await submit(client, good, w.store)
        await until(lambda: w.last_state("ok-1") == "queued" or "assigned" in w.states("ok-1"),
                    10, "the good job queued")


async def test_quote_answers_on_the_response_topic_with_the_correlation_data(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with nest(mosquitto, tmp_path, 2) as (_daemon, _fleet, w, _client):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"nest/{w.store}/quote/answers/me"
        props.CorrelationData = b"req-42"
        got: list[aiomqtt.Message] = []
        async with aiomqtt.Client(mosquitto.host, mosquitto.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as asker:
            await asker.subscribe(props.ResponseTopic, qos=1)
            for body in (job(w.store, "q-near", 300, 100), job(w.store, "q-heavy", 300, 100,
                                                               mass_kg=9.0)):
                await asker.publish(f"nest/{w.store}/quote/request", orjson.dumps(body), qos=1,
                                    properties=props)
            async with asyncio.timeout(10):
                async for m in asker.messages:
                    got.append(m)
                    if len(got) == 2:
                        break
        answers = [orjson.loads(bytes(m.payload)) for m in got]  # type: ignore[arg-type]
        assert [m.properties.CorrelationData for m in got] == [b"req-42", b"req-42"]  # type: ignore[union-attr]
        near, heavy = answers
        assert near["eligible"] is True and near["drone"] in (1, 2)
        assert near["eta_at_door"] > near["launch_at"]
        assert heavy["eligible"] is False
        assert heavy["reasons"][0]["code"] == "overweight"
