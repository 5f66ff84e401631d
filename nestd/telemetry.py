"""Vehicle telemetry to MQTT: compact state at a fixed rate, availability, and events at once."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiomqtt
import orjson
import structlog

from nestd.aio import check_cancelled
from nestd.mavlink.link import FleetLink, Notice
from nestd.mavlink.vehicle import Vehicle

log = structlog.get_logger("nestd.telemetry")

# Notices that become MQTT events (state changes people and the monitor care about).
EVENT_KINDS = frozenset(
    {
        "vehicle_discovered",
        "vehicle_ready",
        "link_lost",
        "link_restored",
        "vehicle_rebooted",
        "autopilot_changed",
        "mission_changed",
        "ModeChanged",
        "ArmedChanged",
        "LandedStateChanged",
        "StatusText",
        "BatteryLevelCrossed",
        "MissionItemReached",
        "HomeChanged",
    }
)
MAX_PENDING_EVENTS = 1000


class Topics:
    """Every topic is namespaced by store, so one broker (or cluster) serves many stores."""

    def __init__(self, store_id: str) -> None:
        self.base = f"nest/{store_id}"

    @property
    def daemon_availability(self) -> str:
        return f"{self.base}/daemon/availability"

    def vehicle_state(self, key: int) -> str:
        return f"{self.base}/vehicles/{key}/state"

    def vehicle_availability(self, key: int) -> str:
        return f"{self.base}/vehicles/{key}/availability"

    def vehicle_events(self, key: int) -> str:
        return f"{self.base}/vehicles/{key}/events"

    # -- the job API (docs/mqtt-api.md, docs/asyncapi.yaml) --

    @property
    def jobs_submit(self) -> str:
        """Retailer -> nestd: a Job. QoS 1."""
        return f"{self.base}/jobs/submit"

    @property
    def jobs_cancel_filter(self) -> str:
        return f"{self.base}/jobs/+/cancel"

    def job_cancel(self, order_id: str) -> str:
        """Retailer -> nestd: a CancelRequest for one order. QoS 1."""
        return f"{self.base}/jobs/{order_id}/cancel"

    def job_status(self, order_id: str) -> str:
        """nestd -> retailer: the latest JobStatus, retained. QoS 1."""
        return f"{self.base}/jobs/{order_id}/status"

    def job_events(self, order_id: str) -> str:
        """nestd -> retailer: every JobStatus in order, not retained. QoS 1."""
        return f"{self.base}/jobs/{order_id}/events"

    @property
    def jobs_rejected(self) -> str:
        """nestd -> retailer: a Rejection for every message that was not accepted."""
        return f"{self.base}/jobs/rejected"

    @property
    def deadletter(self) -> str:
        """nestd -> operators: the raw bytes of every rejected message, as received."""
        return f"{self.base}/deadletter"

    @property
    def quote_request(self) -> str:
        """Retailer -> nestd: a Job to quote; answered on the MQTT 5 response topic."""
        return f"{self.base}/quote/request"

    @property
    def quote_responses(self) -> str:
        """Where quotes go when the request named no response topic."""
        return f"{self.base}/quote/responses"


def _plain(value: Any) -> Any:
    """Event details as JSON-friendly values (dataclasses, enums, NaN -> null)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def state_message(v: Vehicle, now_s: float) -> dict[str, Any]:
    """The compact per-vehicle state message."""
    s = v.state
    h = v.health.snapshot(now_s)
    pos = s.position
    return {
        "sysid": v.sysid,
        "t": round(time.time(), 3),
        "lat": None if s.lat_deg is None else round(s.lat_deg, 7),
        "lon": None if s.lon_deg is None else round(s.lon_deg, 7),
        "alt_rel_m": None if s.alt_rel_m is None else round(s.alt_rel_m, 2),
        "alt_amsl_m": None if s.alt_amsl_m is None else round(s.alt_amsl_m, 2),
        "groundspeed_mps": None if s.hud.groundspeed_mps is None
        else round(s.hud.groundspeed_mps, 2),
        "heading_deg": None if pos.heading_deg is None else round(pos.heading_deg, 1),
        "battery_pct": s.battery_pct,
        "battery_v": None if s.battery.voltage_v is None else round(s.battery.voltage_v, 2),
        "mode": s.mode_name,
        "armed": s.armed,
        "landed_state": s.landed_state,
        "gps_fix": s.gps.fix_type,
        "gps_sats": s.gps.satellites,
        "mission_seq": s.mission_seq,
        "link": {
            "alive": h.alive,
            "loss": round(h.loss_ratio, 4),
            "rtt_ms": None if h.rtt_s is None else round(h.rtt_s * 1000, 1),
        },
    }


class TelemetryPublisher:
    """Publishes what the FleetLink knows. `run(client)` returns when the client fails; the
    caller reconnects and calls it again: the latest state is simply published again, and
    events wait (bounded) in between."""

    def __init__(self, link: FleetLink, store_id: str, rate_hz: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.topics = Topics(store_id)
        self.period_s = 1.0 / rate_hz
        self.clock = clock
        self._events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=MAX_PENDING_EVENTS)
        self._wake = asyncio.Event()
        self._availability: dict[int, bool] = {}
        self.dropped_events = 0
        self.published = 0
        link.listen(self._on_notice)

    def _on_notice(self, notice: Notice) -> None:
        if notice.kind not in EVENT_KINDS:
            return
        if len(self._events) == self._events.maxlen:
            self.dropped_events += 1  # the oldest goes: a long outage keeps the newest
        self._events.append((notice.vehicle, {
            "event": notice.kind, "t": round(time.time(), 3), "detail": _plain(notice.detail)}))
        self._wake.set()

    async def run(self, client: aiomqtt.Client) -> None:
        self._availability.clear()  # a new session: send availability again
        next_tick = self.clock()
        while True:
            check_cancelled()
            await self._flush_events(client)
            now = self.clock()
            if now >= next_tick:
                next_tick = max(next_tick + self.period_s, now)
                await self._publish_states(client, now)
            self._wake.clear()
            if self._events:
                continue
            try:
                async with asyncio.timeout(max(next_tick - self.clock(), 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _flush_events(self, client: aiomqtt.Client) -> None:
        while self._events:
            key, payload = self._events[0]
            await client.publish(self.topics.vehicle_events(key), orjson.dumps(payload), qos=1)
            self._events.popleft()  # only once the broker has it
            self.published += 1

    async def _publish_states(self, client: aiomqtt.Client, now_s: float) -> None:
        for key, v in list(self.link.vehicles.items()):
            alive = v.health.alive
            if self._availability.get(key) != alive:
                await client.publish(self.topics.vehicle_availability(key),
                                     b"online" if alive else b"offline", qos=1, retain=True)
                self._availability[key] = alive
            await client.publish(self.topics.vehicle_state(key),
                                 orjson.dumps(state_message(v, now_s)), qos=0)
            self.published += 1
