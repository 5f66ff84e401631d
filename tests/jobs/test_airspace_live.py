"""A live airspace update reaches the daemon's quotes: a new keep-out over an address makes
it a courier job at once; removing it makes it a drone job again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from nestsim.fleet import DEFAULT_HOME
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import Broker
from tests.jobs.store import write_store
from tests.jobs.test_jobs_e2e import at, job, nest


async def ask(broker: Broker, store: str, body: dict[str, Any]) -> dict[str, Any]:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = f"nest/{store}/quote/answers/live"
    props.CorrelationData = body["order_id"].encode()
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe(props.ResponseTopic, qos=1)
        await c.publish(f"nest/{store}/quote/request", orjson.dumps(body), qos=1,
                        properties=props)
        async with asyncio.timeout(10):
            async for m in c.messages:
                answer: dict[str, Any] = orjson.loads(bytes(m.payload))  # type: ignore[arg-type]
                return answer
    raise AssertionError("no answer")


async def test_a_new_keep_out_in_the_store_file_changes_the_next_quote(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with nest(mosquitto, tmp_path, 1) as (daemon, _fleet, w, _client):
        assert daemon.jobs is not None and daemon.jobs.watcher is not None
        store_file = tmp_path / "store.geojson"
        before = await ask(mosquitto, w.store, job(w.store, "live-1", 0, 500))
        assert before["eligible"] is True
        pads = [at(0.0, 0.0)]
        write_store(store_file, DEFAULT_HOME[:2], pads, store_id=w.store,
                    keep_outs=[(0.0, 500.0, 100.0)])
        update = daemon.jobs.watcher.check()
        assert update is not None and update.accepted and update.diff.added == ("ko-1",)
        during = await ask(mosquitto, w.store, job(w.store, "live-2", 0, 500))
        assert during["eligible"] is False
        assert during["reasons"][0]["code"] == "no_legal_route"
        write_store(store_file, DEFAULT_HOME[:2], pads, store_id=w.store)
        assert daemon.jobs.watcher.check() is not None
        after = await ask(mosquitto, w.store, job(w.store, "live-3", 0, 500))
        assert after["eligible"] is True
