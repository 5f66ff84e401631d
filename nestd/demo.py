"""The demo: a broker, a simulated fleet at a real store's nest, the daemon, and a retailer.

`nestd demo` starts a private mosquitto on a free loopback port, a nestsim fleet standing on
the pads of the example store (geofences/us-tx-richardson.geojson), and the daemon itself,
configured as in production. A retailer client then asks for quotes over MQTT, hands the
orders a drone can't fly to a courier, submits the rest, and prints each job's lifecycle and
each drone's state as the daemon publishes them, until every job has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiomqtt
import orjson
import structlog
from nestsim.fleet import Fleet, FleetConfig
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nestd.airspace import Airspace, load_airspace
from nestd.config import AirspaceConfig, DaemonConfig, JobsConfig, MqttConfig
from nestd.daemon import Daemon, ShutdownSettings, build_daemon
from nestd.devbroker import free_ports, private_broker
from nestd.mavlink.config import EndpointConfig, LinkConfig

STORE_FILE = Path(__file__).resolve().parent.parent / "geofences" / "us-tx-richardson.geojson"
PARCEL_KG = 1.2
TERMINAL = {"completed", "declined", "cancelled", "aborted", "failed", "rejected"}


@dataclass(frozen=True)
class Order:
    order_id: str
    lat_deg: float
    lon_deg: float
    mass_kg: float
    note: str


ORDERS = (
    Order("A-1001", 32.9700, -96.7200, 1.2, "1.2 km north-east"),
    Order("A-1002", 32.9525, -96.7330, 0.8, "1.1 km south-west, near the school"),
    Order("A-1003", 32.9655, -96.7400, 2.0, "1.5 km west"),
    Order("A-1004", 32.9560, -96.7150, 1.5, "1.1 km south-east, past the substation"),
    Order("A-1005", 32.9640, -96.7120, 4.5, "too heavy for a drone"),
    Order("A-1006", 32.9100, -96.6400, 1.0, "outside the delivery area"),
    Order("A-1007", 32.99175, -96.7062, 0.5, "on the hospital helipad approach"),
)


@dataclass
class Board:
    """What the retailer sees, from MQTT alone."""

    store: str
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)
    vehicles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if len(parts) == 5 and parts[2] == "jobs" and parts[4] == "events":
            self.jobs[parts[3]] = body
            self.history.setdefault(parts[3], []).append(body["state"])
        elif len(parts) == 5 and parts[2] == "vehicles" and parts[4] == "state":
            self.vehicles[parts[3]] = body


def render(board: Board, submitted: list[str], elapsed_s: float, speed: float) -> str:
    out = [f"nestd demo: {elapsed_s:5.1f} s ({elapsed_s * speed:5.0f} s simulated at "
           f"{speed:g}x)",
           f"  {'order':<7} {'state':<11} {'drone':>5}  {'ETA at door (UTC)':<17} reason"]
    for oid in submitted:
        j = board.jobs.get(oid, {})
        eta = j.get("eta_at_door", "")[11:19] if j.get("eta_at_door") else ""
        why = (j.get("reason") or {}).get("message", "")
        out.append(f"  {oid:<7} {j.get('state', 'sent'):<11} {j.get('drone', ''):>5}  "
                   f"{eta:<17} {why[:60]}")
    out.append(f"  {'drone':<5} {'mode':<13} {'armed':<5} {'alt m':>6} {'batt %':>6} "
               f"{'lat':>10} {'lon':>11}")
    for key, v in sorted(board.vehicles.items()):
        alt = v.get("alt_rel_m")
        lat, lon = v.get("lat"), v.get("lon")
        out.append(f"  {key:<5} {v.get('mode') or '?':<13} {'yes' if v.get('armed') else 'no':<5}"
                   f" {alt if alt is not None else float('nan'):6.1f}"
                   f" {v.get('battery_pct') or 0:6.0f}"
                   f" {lat if lat is not None else float('nan'):10.6f}"
                   f" {lon if lon is not None else float('nan'):11.6f}")
    return "\n".join(out)


def order_json(store: str, o: Order) -> bytes:
    return orjson.dumps({
        "order_id": o.order_id, "store_id": store,
        "destination": {"lat_deg": o.lat_deg, "lon_deg": o.lon_deg},
        "parcel": {"mass_kg": o.mass_kg},
        "promised_by": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    })


def log_to_file(path: Path) -> TextIO:
    """Send the daemon's structured log to `path` (JSON lines), off the demo's screen."""
    f = path.open("a")
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=f),
        cache_logger_on_first_use=False,
    )
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    return f


@contextlib.asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(daemon.run(), name="daemon")
    try:
        yield task
    finally:
        daemon.request_stop()
        daemon.request_stop()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def run_demo(vehicles: int = 2, speed: float = 10.0, timeout_s: float = 300.0,
                   out: TextIO = sys.stdout) -> int:
    """Returns 0 when every submitted job completed and every other order was quoted
    ineligible (handed to a courier), 1 otherwise."""
    airspace = load_airspace(STORE_FILE)
    pads = [(p.position.lat_deg, p.position.lon_deg) for p in airspace.pads]
    nest = airspace.nest.position
    while len(pads) < vehicles:  # more drones than pads: extra ones stand by the nest
        east = 6.0 * (len(pads) + 1)
        lon, lat = airspace.frame.to_wgs84(east, -12.0)
        pads.append((float(lat), float(lon)))
    ports = free_ports(vehicles, socket.SOCK_DGRAM)
    sim = FleetConfig(vehicles=vehicles, speed=speed, api_remote_ports=ports, api_local_base=0,
                      gcs_link=False, home=(nest.lat_deg, nest.lon_deg,
                                            airspace.store.ground_amsl_m),
                      pads=pads[:vehicles], payload_kg=PARCEL_KG, reload_payload=True,
                      ekf_ready_s=0.0)
    started = time.monotonic()
    # Kept afterwards: the daemon's log, its journal (SQLite) and the broker's log.
    tmp = tempfile.mkdtemp(prefix="nestd-demo-")
    saved = structlog.get_config()
    log_file = log_to_file(Path(tmp) / "nestd.log")
    try:
        return await _demo(vehicles, speed, timeout_s, out, Path(tmp), started, airspace, sim,
                           ports)
    finally:
        print(f"nestd demo: the daemon's log and journal are in {tmp}", file=out)
        structlog.configure(**saved)
        log_file.close()


async def _demo(vehicles: int, speed: float, timeout_s: float, out: TextIO, tmp: Path,
                started: float, airspace: Airspace, sim: FleetConfig, ports: list[int]) -> int:
    store = airspace.store.id
    with private_broker(tmp) as broker_port:
        config = DaemonConfig(
            store_id=store, state_dir=tmp / "state",
            mqtt=MqttConfig(port=broker_port, client_id=f"nestd-demo-{uuid.uuid4().hex[:6]}"),
            # Heartbeats at the simulation's pace: the drones' datalink-loss failsafe counts
            # simulated seconds.
            mavlink=LinkConfig(heartbeat_interval_s=0.5 / speed,
                               endpoints=[EndpointConfig(name=f"drone{i + 1}",
                                                         kind="udp_listen", port=p)
                                          for i, p in enumerate(ports)]),
            airspace=AirspaceConfig(file=STORE_FILE),
            jobs=JobsConfig(launch_spacing_s=3.0, turnaround_s=0.0),
        )
        daemon = build_daemon(config)
        daemon.shutdown = ShutdownSettings(grace_s=30)
        board = Board(store)
        print(f"nestd demo: store {store}, {vehicles} simulated PX4 drones at {speed:g}x, "
              f"broker on 127.0.0.1:{broker_port}", file=out, flush=True)
        async with Fleet(sim) as fleet, running(daemon), aiomqtt.Client(
                "127.0.0.1", broker_port, protocol=aiomqtt.ProtocolVersion.V5) as retailer:
            await retailer.subscribe(f"nest/{store}/jobs/+/events", qos=1)
            await retailer.subscribe(f"nest/{store}/vehicles/+/state", qos=0)
            inbox = f"retailer/{uuid.uuid4().hex[:8]}/quotes"
            await retailer.subscribe(inbox, qos=1)

            async def listen() -> None:
                async for m in retailer.messages:
                    if m.topic.value == inbox:
                        q = orjson.loads(bytes(m.payload))
                        board.quotes[q["order_id"]] = q
                    else:
                        board.on_message(m.topic.value, bytes(m.payload))

            listener = asyncio.create_task(listen(), name="retailer")
            try:
                while len([v for v in daemon.link.vehicles.values() if v.ready]) < vehicles:
                    if time.monotonic() - started > 30:
                        print("nestd demo: the simulated drones did not come up", file=out)
                        return 1
                    await asyncio.sleep(0.2)
                # Quotes first: what goes by drone, what goes to a courier, and why.
                for o in ORDERS:
                    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    props.ResponseTopic = inbox
                    props.CorrelationData = o.order_id.encode()
                    await retailer.publish(f"nest/{store}/quote/request",
                                           order_json(store, o), qos=1, properties=props)
                while len(board.quotes) < len(ORDERS):
                    if time.monotonic() - started > 30:
                        print("nestd demo: quotes did not arrive", file=out)
                        return 1
                    await asyncio.sleep(0.1)
                submitted: list[str] = []
                for o in ORDERS:
                    q = board.quotes[o.order_id]
                    if q["eligible"]:
                        eta = q["eta_at_door"][11:19]
                        print(f"  quote {o.order_id} ({o.note}): drone, door ETA {eta} UTC, "
                              f"confidence {q['confidence']:.2f}", file=out)
                        await retailer.publish(f"nest/{store}/jobs/submit",
                                               order_json(store, o), qos=1)
                        submitted.append(o.order_id)
                    else:
                        why = "; ".join(r["message"] for r in q["reasons"])
                        print(f"  quote {o.order_id} ({o.note}): courier: {why[:90]}",
                              file=out)
                out.flush()
                while time.monotonic() - started < timeout_s:
                    await asyncio.sleep(1.0)
                    print(render(board, submitted, time.monotonic() - started, speed),
                          file=out, flush=True)
                    states = [board.jobs.get(o, {}).get("state") for o in submitted]
                    if all(s in TERMINAL for s in states):
                        drops = sum(len(v.drops) for v in fleet.vehicles)
                        done = all(s == "completed" for s in states)
                        print(f"nestd demo: {sum(s == 'completed' for s in states)} of "
                              f"{len(submitted)} deliveries completed "
                              f"({drops} parcels lowered by winch)"
                              f"{'' if done else ', see the reasons above'}; "
                              f"{len(ORDERS) - len(submitted)} orders went to a courier",
                              file=out)
                        return 0 if done else 1
                print("nestd demo: timed out before every job ended", file=out)
                return 1
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await listener
