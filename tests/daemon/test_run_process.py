"""`nestd run` as systemd starts it: a separate process on uvloop, a config file, a job over
MQTT flown to completion, and SIGTERM ending it cleanly once the drone is down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from pathlib import Path

import aiomqtt
import orjson
from nestsim.fleet import DEFAULT_HOME, Fleet

from tests.conftest import Broker, fleet_config
from tests.jobs.store import write_store
from tests.jobs.test_jobs_e2e import HAPPY_PATH, at, job
from tests.sim.gcs import until

ROOT = Path(__file__).resolve().parents[2]


async def test_nestd_run_flies_a_job_from_mqtt_and_stops_on_sigterm(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store = f"proc-{uuid.uuid4().hex[:8]}"
    pads = [at(0.0, 0.0)]
    sim = fleet_config(1, speed=10.0, pads=pads, payload_kg=1.0)
    assert sim.api_remote_ports is not None
    write_store(tmp_path / "store.geojson", DEFAULT_HOME[:2], pads, store_id=store)
    cfg = tmp_path / "nestd.toml"
    cfg.write_text(f"""
store_id = "{store}"
state_dir = "{tmp_path / 'state'}"
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
[mavlink]
heartbeat_interval_s = 0.05
[[mavlink.endpoints]]
name = "sim"
kind = "udp_listen"
port = {sim.api_remote_ports[0]}
[airspace]
file = "store.geojson"
[jobs]
launch_spacing_s = 0.5
turnaround_s = 0
""")
    events: list[dict[str, object]] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(f"nest/{store}/jobs/+/events", qos=1)
        await client.subscribe(f"nest/{store}/daemon/availability", qos=1)
        online: list[bool] = []

        async def collect() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                async for m in client.messages:
                    if m.topic.value.endswith("/availability"):
                        online.append(m.payload == b"online")
                    else:
                        events.append(orjson.loads(bytes(m.payload)))  # type: ignore[arg-type]

        collector = asyncio.create_task(collect())
        async with Fleet(sim):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nestd", "run", "--config", str(cfg), cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                # Online means subscribed: a job sent now is not lost.
                await until(lambda: online[-1:] == [True], 20, "daemon online")
                await client.publish(f"nest/{store}/jobs/submit",
                                     orjson.dumps(job(store, "proc-1", 150, 250)), qos=1)
                await until(lambda: [e["state"] for e in events] == HAPPY_PATH, 90,
                            "the job completed")
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    rc = await proc.wait()
                assert rc == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        collector.cancel()
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert "Traceback" not in err
    assert "daemon_stopped" in err
