"""The composition root: config -> objects -> one TaskGroup; a stop that waits for drones."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel

from nestd.config import DaemonConfig
from nestd.jobs.services import JobServices
from nestd.mavlink.link import FleetLink
from nestd.systemd import Notifier
from nestd.telemetry import TelemetryPublisher, Topics

log = structlog.get_logger("nestd")

MAX_PACKET_BYTES = 1024 * 1024


class ShutdownSettings(BaseModel):
    grace_s: float = 900.0  # how long a stop waits for airborne drones to land


def airborne(link: FleetLink) -> list[int]:
    """Vehicles that are (or may be) flying: armed, or not known to be on the ground."""
    out = []
    for key, v in link.vehicles.items():
        s = v.state
        on_ground = s.landed_state == 1  # MAV_LANDED_STATE_ON_GROUND
        if s.armed or (s.landed_state is not None and not on_ground):
            out.append(key)
    return out


class Daemon:
    """Built from the config by `build_daemon`; `run()` until `request_stop()` (SIGTERM)."""

    def __init__(self, config: DaemonConfig, link: FleetLink, notifier: Notifier,
                 shutdown: ShutdownSettings | None = None,
                 jobs: JobServices | None = None) -> None:
        self.config = config
        self.link = link
        self.jobs = jobs
        self.notifier = notifier
        self.shutdown = shutdown or ShutdownSettings()
        self.topics = Topics(config.store_id)
        self.telemetry = TelemetryPublisher(link, config.store_id, config.telemetry.rate_hz)
        self.log = log.bind(store=config.store_id)
        self.broker_connected = False
        self._stop = asyncio.Event()
        self._force = asyncio.Event()

    def request_stop(self) -> None:
        """First call: stop once nothing is airborne (or the grace ends); second: now."""
        if self.jobs is not None:
            self.jobs.dispatcher.paused = True  # nothing new launches
        if self._stop.is_set():
            self.log.warning("forced_stop", airborne=airborne(self.link))
            self._force.set()
        self._stop.set()

    async def run(self) -> None:
        async with self.link, asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(self._mqtt_loop(), name="mqtt"),
                tg.create_task(self._watchdog_loop(), name="watchdog"),
            ]
            if self.jobs is not None:
                tasks += [
                    tg.create_task(self.jobs.executor.run(), name="executor"),
                    tg.create_task(self.jobs.dispatcher.run(), name="dispatcher"),
                ]
                if self.jobs.watcher is not None:
                    tasks.append(tg.create_task(self.jobs.watcher.run(), name="airspace"))
            self.notifier.ready(f"watching {len(self.link.endpoints)} MAVLink endpoints")
            self.log.info("daemon_ready")
            await self._stop.wait()
            await self._wait_for_landing()
            for t in tasks:
                t.cancel()
        if self.jobs is not None:
            self.jobs.close()
        self.log.info("daemon_stopped")

    async def _wait_for_landing(self) -> None:
        """Never abandon a drone in the air: keep the link (and its monitoring) running."""
        deadline = time.monotonic() + self.shutdown.grace_s
        while not self._force.is_set():
            flying = airborne(self.link)
            if not flying:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                self.log.error("stopping_with_drones_airborne", airborne=flying)
                return
            self.notifier.stopping(f"waiting for {len(flying)} airborne drones to land")
            self.log.warning("stop_waits_for_landing", airborne=flying, grace_left_s=round(left))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 1.0)):
                    await self._force.wait()

    async def _watchdog_loop(self) -> None:
        if self.notifier.watchdog_s is None:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(self.notifier.watchdog_s / 3)

    async def _mqtt_loop(self) -> None:
        m = self.config.mqtt
        backoff = 0.5
        while True:
            will = aiomqtt.Will(self.topics.daemon_availability, b"offline", qos=1, retain=True)
            # A persistent session (clean start off, with an expiry) so jobs published while
            # nestd is away are delivered when it returns; acks are sent by the job API only
            # after the journal commit, so manual acks are on before the first packet.
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.config.jobs.session_expiry_s
            # Nothing nestd accepts is anywhere near this; a flood of huge messages stops at
            # the broker instead of in the loop's memory (see [jobs] max_payload_bytes).
            props.MaximumPacketSize = MAX_PACKET_BYTES
            client = aiomqtt.Client(
                m.host, m.port, username=m.username, password=m.password,
                identifier=m.client_id or f"nestd-{self.config.store_id}",
                protocol=aiomqtt.ProtocolVersion.V5, will=will, keepalive=m.keepalive_s,
                clean_start=self.jobs is None, properties=props,
            )
            client._client.manual_ack_set(True)
            try:
                async with client:
                    if self.jobs is not None:
                        # "online" means taking jobs: subscribed before it is said.
                        await self.jobs.api.subscribe(client)
                    await client.publish(self.topics.daemon_availability, b"online", qos=1,
                                         retain=True)
                    self.broker_connected = True
                    backoff = 0.5
                    self.notifier.status("connected to the broker")
                    self.log.info("broker_connected", host=m.host, port=m.port)
                    try:
                        async with asyncio.TaskGroup() as session:
                            session.create_task(self.telemetry.run(client), name="telemetry")
                            if self.jobs is not None:
                                session.create_task(self.jobs.api.run(client), name="job-api")
                    except asyncio.CancelledError:
                        # A clean disconnect sends no last will: say offline ourselves.
                        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                            async with asyncio.timeout(2.0):
                                await client.publish(self.topics.daemon_availability,
                                                     b"offline", qos=1, retain=True)
                        raise
            except* aiomqtt.MqttError as group:
                exc = group.exceptions[0]
                self.broker_connected = False
                self.notifier.status(f"broker unreachable: {exc}")
                self.log.warning("broker_unreachable", error=str(exc), retry_s=backoff)
            except* Exception:
                # A telemetry bug must not end the TaskGroup: that would stop the link and
                # leave drones in the air unwatched. Log it and start a fresh session.
                self.broker_connected = False
                self.log.exception("telemetry_failed", retry_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, m.reconnect_max_s)


def build_daemon(config: DaemonConfig, notifier: Notifier | None = None) -> Daemon:
    link = FleetLink(config.mavlink)
    jobs = JobServices.build(config, link) if config.airspace is not None else None
    return Daemon(config, link, notifier or Notifier(), jobs=jobs)
