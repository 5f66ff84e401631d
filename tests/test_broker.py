"""The test suite's real MQTT broker works as the daemon will use it (MQTT 5, QoS 1, retained)."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import Broker


async def test_broker_round_trips_qos1_and_keeps_retained_messages(mosquitto: Broker) -> None:
    topic = f"test/{uuid.uuid4().hex}/status"
    async with aiomqtt.Client(mosquitto.host, mosquitto.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as pub:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = b"abc"
        await pub.publish(topic, b'{"state":"queued"}', qos=1, retain=True, properties=props)
    # a client that subscribes afterwards still receives the retained status
    async with aiomqtt.Client(mosquitto.host, mosquitto.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as sub:
        await sub.subscribe(topic, qos=1)
        msg = await asyncio.wait_for(anext(aiter(sub.messages)), 5.0)
        assert msg.payload == b'{"state":"queued"}'
        assert msg.retain
        assert msg.properties is not None
        assert msg.properties.CorrelationData == b"abc"
