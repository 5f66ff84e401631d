"""The daemon end to end: nestsim over UDP, a real mosquitto, and a fake systemd notify socket."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import aiomqtt
import orjson
from nestsim.fleet import Fleet

from nestd.config import DaemonConfig, MqttConfig, TelemetryConfig
from nestd.daemon import Daemon, ShutdownSettings, build_daemon
from nestd.mavlink.config import EndpointConfig, LinkConfig
from nestd.systemd import Notifier
from tests.conftest import Broker, fleet_config
from tests.sim.gcs import until


class NotifySocket:
    """Plays systemd's side of the notify protocol."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.received: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                self.received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.received

    def close(self) -> None:
        self.sock.close()


async def test_daemon_publishes_telemetry_notifies_systemd_and_waits_for_landing(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store = f"test-{uuid.uuid4().hex[:8]}"
    sim_cfg = fleet_config(1, speed=5.0)
    assert sim_cfg.api_remote_ports is not None
    config = DaemonConfig(
        store_id=store,
        state_dir=tmp_path,
        mqtt=MqttConfig(host=mosquitto.host, port=mosquitto.port),
        telemetry=TelemetryConfig(rate_hz=5.0),
        mavlink=LinkConfig(endpoints=[EndpointConfig(
            name="sitl", kind="udp_listen", port=sim_cfg.api_remote_ports[0])]),
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    notifier = Notifier({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "600000"})
    daemon: Daemon = build_daemon(config, notifier)
    daemon.shutdown = ShutdownSettings(grace_s=120)
    seen: dict[str, list[bytes]] = {}

    async def subscriber(ready: asyncio.Event) -> None:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as c:
            await c.subscribe(f"nest/{store}/#", qos=1)
            ready.set()
            async for m in c.messages:
                seen.setdefault(str(m.topic), []).append(bytes(m.payload))  # type: ignore[arg-type]

    sub_ready = asyncio.Event()
    sub = asyncio.create_task(subscriber(sub_ready), name="test-subscriber")
    try:
        await sub_ready.wait()
        async with Fleet(sim_cfg) as fleet:
            run = asyncio.create_task(daemon.run(), name="daemon")
            base = f"nest/{store}"
            await until(lambda: seen.get(f"{base}/daemon/availability", [])[-1:] == [b"online"],
                        10, "daemon online")
            await until(lambda: f"{base}/vehicles/1/state" in seen, 15, "vehicle state")
            await until(lambda: seen.get(f"{base}/vehicles/1/availability") == [b"online"], 5,
                        "vehicle online")
            state = orjson.loads(seen[f"{base}/vehicles/1/state"][-1])
            sim_v = fleet.vehicle(0)
            await until(lambda: orjson.loads(seen[f"{base}/vehicles/1/state"][-1])["lat"]
                        is not None, 5, "position in state")
            state = orjson.loads(seen[f"{base}/vehicles/1/state"][-1])
            assert abs(state["lat"] - sim_v.lat_deg) < 1e-5
            assert state["mode"] == "AUTO.LOITER" and state["armed"] is False
            events = [orjson.loads(p)["event"] for p in seen.get(f"{base}/vehicles/1/events", [])]
            assert "vehicle_discovered" in events
            msgs = notify.poll()
            assert any("READY=1" in m for m in msgs)
            await until(lambda: any("WATCHDOG=1" in m for m in notify.poll()), 3, "watchdog")

            # A stop while a drone flies waits for it to land.
            v = daemon.link.vehicles[1]
            await daemon.link.wait_for_vehicles({1}, timeout_s=10)
            await v.takeoff(10.0)
            await until(lambda: sim_v.alt_rel_m > 9.0, 15, "airborne")
            # (the daemon knows it from telemetry, which lags the simulator a little)
            await until(lambda: v.state.armed and v.state.landed_state == 2, 5, "seen flying")
            daemon.request_stop()
            await until(lambda: any("waiting for 1 airborne" in m for m in notify.poll()), 5,
                        "stop waits")
            assert not run.done()
            await v.land()
            async with asyncio.timeout(60):
                await run
            assert sim_v.is_landed
            await until(lambda: seen[f"{base}/daemon/availability"][-1] == b"offline", 5,
                        "daemon offline")
    finally:
        sub.cancel()
        notify.close()


async def test_a_telemetry_failure_does_not_stop_the_daemon(
    mosquitto: Broker, tmp_path: Path
) -> None:
    config = DaemonConfig(
        store_id=f"test-{uuid.uuid4().hex[:8]}",
        state_dir=tmp_path,
        mqtt=MqttConfig(host=mosquitto.host, port=mosquitto.port, reconnect_max_s=0.5),
        mavlink=LinkConfig(endpoints=[EndpointConfig(
            name="sitl", kind="udp_listen", port=fleet_config(1).api_remote_ports[0])]),  # type: ignore[index]
    )
    daemon = build_daemon(config, Notifier({}))
    calls = []

    async def flaky(client: aiomqtt.Client) -> None:
        calls.append(client)
        if len(calls) == 1:
            raise RuntimeError("a bug in a telemetry formatter")
        await asyncio.Event().wait()

    daemon.telemetry.run = flaky  # type: ignore[method-assign]
    run = asyncio.create_task(daemon.run(), name="daemon")
    try:
        await until(lambda: len(calls) >= 2, 10, "a fresh telemetry session after the failure")
        assert not run.done()  # the link (and so the drones' watch) is still running
        assert daemon.link.endpoints
    finally:
        daemon.request_stop()
        async with asyncio.timeout(10):
            await run
