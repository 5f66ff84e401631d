"""The MQTT API as an AsyncAPI 3.0 document, built from the pydantic models and `Topics`.

`python -m nestd.jobs.asyncapi --write docs/asyncapi.json` regenerates the checked-in copy;
a test fails when the two differ, so the document can't drift from the code. Operations are
written from nestd's side (`receive`: the retailer publishes, nestd consumes; `send`: nestd
publishes), because the document describes the daemon.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from nestd.config import MqttConfig
from nestd.jobs.intake import parse_job
from nestd.jobs.models import (
    API_VERSION,
    MAX_PAYLOAD_BYTES,
    CancelRequest,
    Job,
    JobStatus,
    Quote,
    Rejection,
)
from nestd.telemetry import EVENT_KINDS, Topics

ASYNCAPI_VERSION = "3.0.0"
MQTT_BINDING_VERSION = "0.2.0"
SCHEMA_REF = "#/components/schemas/{model}"

STORE, ORDER, VEHICLE = "{store_id}", "{order_id}", "{vehicle}"
_VEHICLE_KEY = 987654321  # stands in for {vehicle}: the Topics methods take an int
RESPONSE_TOPIC = "$message.header#/responseTopic"
CORRELATION_DATA = "$message.header#/correlationData"

# Inputs are described as nestd validates them, outputs as it serializes them.
MODELS: tuple[tuple[type[BaseModel], Literal["validation", "serialization"]], ...] = (
    (Job, "validation"),
    (CancelRequest, "validation"),
    (Quote, "serialization"),
    (Rejection, "serialization"),
    (JobStatus, "serialization"),
)

# -- examples: one realistic message per model, as JSON on the wire --------------------------

_STORE_EXAMPLE = "us-tx-richardson-0042"
_T = Topics(_STORE_EXAMPLE)

JOB_EXAMPLE: dict[str, Any] = {
    "order_id": "ORD-2025-118734",
    "store_id": _STORE_EXAMPLE,
    "destination": {"lat_deg": 32.97121, "lon_deg": -96.71835,
                    "notes": "Back garden, left of the shed"},
    "parcel": {"mass_kg": 1.4,
               "dimensions": {"length_cm": 30.0, "width_cm": 22.0, "height_cm": 12.0}},
    "promised_by": "2025-06-14T15:30:00-05:00",
    "priority": 2,
    "method": "winch",
    "customer_ref": "cust-77f3a9",
}

CANCEL_EXAMPLE: dict[str, Any] = {"reason": "the customer cancelled in the app"}

QUOTE_EXAMPLE: dict[str, Any] = {
    "order_id": "ORD-2025-118734",
    "store_id": _STORE_EXAMPLE,
    "eligible": True,
    "reasons": [],
    "launch_at": "2025-06-14T19:42:00Z",
    "eta_at_door": "2025-06-14T19:49:30Z",
    "confidence": 0.85,
    "drone": 2,
    "quoted_at": "2025-06-14T19:38:12Z",
    "valid_until": "2025-06-14T19:40:12Z",
}

JOB_STATUS_EXAMPLE: dict[str, Any] = {
    "order_id": "ORD-2025-118734",
    "store_id": _STORE_EXAMPLE,
    "seq": 7,
    "state": "enroute",
    "at": "2025-06-14T19:43:05Z",
    "drone": 2,
    "pad": "pad-2",
    "eta_at_door": "2025-06-14T19:49:30Z",
    "parcel": "aboard",
    "detail": {},
}


def _rejection_example() -> dict[str, Any]:
    """A rejection exactly as intake words it: a job with latitude and longitude swapped."""
    swapped = {**JOB_EXAMPLE, "order_id": "ORD-2025-118735",
               "destination": {"lat_deg": -96.71835, "lon_deg": 32.97121}}
    reasons = parse_job(json.dumps(swapped).encode(), store_id=_STORE_EXAMPLE,
                        now=datetime(2025, 6, 14, 19, 0, tzinfo=UTC))
    if not isinstance(reasons, list):
        raise AssertionError("intake accepted the swapped coordinates of the example")
    return {
        "order_id": "ORD-2025-118735",
        "store_id": _STORE_EXAMPLE,
        "topic": _T.jobs_submit,
        "reasons": [r.model_dump(mode="json", exclude_none=True) for r in reasons],
        "received_at": "2025-06-14T19:00:02Z",
    }


VEHICLE_STATE_EXAMPLE: dict[str, Any] = {
    "sysid": 2, "t": 1749930185.412, "lat": 32.9651234, "lon": -96.7212345,
    "alt_rel_m": 60.12, "alt_amsl_m": 252.3, "groundspeed_mps": 11.8, "heading_deg": 42.5,
    "battery_pct": 71.0, "battery_v": 22.81, "mode": "AUTO.MISSION", "armed": True,
    "landed_state": 2, "gps_fix": 3, "gps_sats": 17, "mission_seq": 4,
    "link": {"alive": True, "loss": 0.0021, "rtt_ms": 38.4},
}

VEHICLE_EVENT_EXAMPLE: dict[str, Any] = {
    "event": "ModeChanged", "t": 1749930190.118,
    "detail": {"time_s": 512.6, "old": "AUTO.MISSION", "new": "AUTO.RTL",
               "custom_mode": 84148224},
}


def model_examples() -> dict[type[BaseModel], dict[str, Any]]:
    """One example per model, as it travels (the daemon leaves out fields that are null)."""
    return {Job: JOB_EXAMPLE, CancelRequest: CANCEL_EXAMPLE, Quote: QUOTE_EXAMPLE,
            Rejection: _rejection_example(), JobStatus: JOB_STATUS_EXAMPLE}


# -- schemas ----------------------------------------------------------------------------------

_NUMBER_OR_NULL = ["number", "null"]
_INTEGER_OR_NULL = ["integer", "null"]

EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {
    "Availability": {
        "type": "string", "enum": ["online", "offline"],
        "description": "Plain text, retained. `offline` is also the daemon's MQTT last will.",
    },
    "DeadLetter": {
        "type": "string",
        "description": "A rejected message's payload, byte for byte as received (it may be "
                       "neither UTF-8 nor JSON). Its Rejection says why.",
    },
    "VehicleState": {
        "type": "object",
        "description": "Compact vehicle state at the telemetry rate. SI units; null when not "
                       "known yet. Keys may be added.",
        "additionalProperties": True,
        "properties": {
            "sysid": {"type": "integer", "description": "MAVLink system id."},
            "t": {"type": "number", "description": "When sent, Unix time, s."},
            "lat": {"type": _NUMBER_OR_NULL, "description": "WGS84 latitude, degrees."},
            "lon": {"type": _NUMBER_OR_NULL, "description": "WGS84 longitude, degrees."},
            "alt_rel_m": {"type": _NUMBER_OR_NULL, "description": "Height above home, m."},
            "alt_amsl_m": {"type": _NUMBER_OR_NULL, "description": "Altitude AMSL, m."},
            "groundspeed_mps": {"type": _NUMBER_OR_NULL, "description": "Ground speed, m/s."},
            "heading_deg": {"type": _NUMBER_OR_NULL, "description": "Heading, degrees."},
            "battery_pct": {"type": _NUMBER_OR_NULL, "description": "Charge left, %."},
            "battery_v": {"type": _NUMBER_OR_NULL, "description": "Pack voltage, V."},
            "mode": {"type": ["string", "null"],
                     "description": "Flight mode from the firmware profile (AUTO.MISSION); "
                                    "custom:<n> when the profile doesn't name it."},
            "armed": {"type": ["boolean", "null"]},
            "landed_state": {"type": _INTEGER_OR_NULL,
                             "description": "MAV_LANDED_STATE: 1 on ground, 2 in air, "
                                            "3 taking off, 4 landing."},
            "gps_fix": {"type": _INTEGER_OR_NULL,
                        "description": "GPS_FIX_TYPE: 3 is a 3D fix."},
            "gps_sats": {"type": _INTEGER_OR_NULL, "description": "Satellites used."},
            "mission_seq": {"type": _INTEGER_OR_NULL,
                            "description": "The mission item being flown."},
            "link": {
                "type": "object",
                "additionalProperties": True,
                "properties": {
                    "alive": {"type": "boolean",
                              "description": "False once the vehicle has been silent too long."},
                    "loss": {"type": "number", "minimum": 0, "maximum": 1,
                             "description": "Share of MAVLink packets lost recently."},
                    "rtt_ms": {"type": _NUMBER_OR_NULL,
                               "description": "Round-trip time, ms."},
                },
                "required": ["alive", "loss", "rtt_ms"],
            },
        },
        "required": [
            "sysid", "t", "lat", "lon", "alt_rel_m", "alt_amsl_m", "groundspeed_mps",
            "heading_deg", "battery_pct", "battery_v", "mode", "armed", "landed_state",
            "gps_fix", "gps_sats", "mission_seq", "link",
        ],
    },
    "VehicleEvent": {
        "type": "object",
        "description": "Something that happened to a vehicle, sent at once.",
        "additionalProperties": True,
        "properties": {
            "event": {"type": "string", "enum": sorted(EVENT_KINDS),
                      "description": "What happened. Kinds may be added."},
            "t": {"type": "number", "description": "When sent, Unix time, s."},
            "detail": {"description": "The event's fields (any JSON value); time_s is the "
                                      "daemon's monotonic clock, not wall time."},
        },
        "required": ["event", "t", "detail"],
    },
}


def build_schemas() -> dict[str, Any]:
    """components.schemas: the models' JSON Schemas with their $defs hoisted, and the rest."""
    _, top = models_json_schema(MODELS, ref_template=SCHEMA_REF)
    schemas: dict[str, Any] = {name: _fix_refs(s) for name, s in top.get("$defs", {}).items()}
    return {**schemas, **EXTRA_SCHEMAS}


def _fix_refs(node: Any) -> Any:
    """A $ref with siblings means nothing in JSON Schema draft 7 (AsyncAPI's schema dialect):
    the siblings (default, description) are kept by wrapping the $ref in allOf."""
    if isinstance(node, list):
        return [_fix_refs(v) for v in node]
    if not isinstance(node, dict):
        return node
    fixed = {k: _fix_refs(v) for k, v in node.items()}
    if "$ref" in fixed and len(fixed) > 1:
        ref = fixed.pop("$ref")
        fixed["allOf"] = [{"$ref": ref}]
    return fixed


# -- channels, messages, operations -----------------------------------------------------------


def _vehicle_topic(topic_of: Callable[[int], str]) -> str:
    topic = topic_of(_VEHICLE_KEY)
    if topic.count(str(_VEHICLE_KEY)) != 1:
        raise ValueError(f"can't find the vehicle key in {topic!r}")
    return topic.replace(str(_VEHICLE_KEY), VEHICLE)


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _message(name: str, title: str, summary: str, schema: str, *,
             content_type: str = "application/json",
             examples: list[dict[str, Any]] | None = None,
             **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "name": name, "title": title, "summary": summary, "contentType": content_type,
        "payload": _ref("components", "schemas", schema),
    }
    if examples:
        msg["examples"] = examples
    return {**msg, **extra}


def _example(name: str, summary: str, payload: Any) -> dict[str, Any]:
    return {"name": name, "summary": summary, "payload": payload}


def build_messages() -> dict[str, Any]:
    ex = model_examples()
    request_bindings = {"mqtt": {
        "responseTopic": {
            "type": "string",
            "description": "Optional MQTT 5 Response Topic: nestd sends its answer "
                           "(a quote, a rejection) there.",
        },
        "correlationData": {
            "type": "string",
            "description": "Optional MQTT 5 Correlation Data (opaque bytes). nestd copies it "
                           "unchanged into the answer.",
        },
        "bindingVersion": MQTT_BINDING_VERSION,
    }}
    correlation = {"location": CORRELATION_DATA,
                   "description": "MQTT 5 Correlation Data, copied from the request."}
    return {
        "job": _message(
            "Job", "Delivery order", "One order for a drone delivery.", "Job",
            examples=[_example("winchDelivery", "A 1.4 kg parcel, lowered by winch.",
                               ex[Job])],
            bindings=request_bindings),
        "quoteRequest": _message(
            "QuoteRequest", "Quote request",
            "Could a drone deliver this order, and when? The body is the Job you would submit.",
            "Job",
            examples=[_example("quoteForWinchDelivery", "Quote the order before submitting.",
                               ex[Job])],
            bindings=request_bindings, correlationId=correlation),
        "cancelRequest": _message(
            "CancelRequest", "Cancel request",
            "Cancel the order named in the topic. An empty payload is a cancel too.",
            "CancelRequest",
            examples=[_example("customerCancelled", "The customer cancelled.",
                               ex[CancelRequest])],
            bindings=request_bindings),
        "quote": _message(
            "Quote", "Quote", "Whether, and when, a drone can deliver the order.", "Quote",
            examples=[_example("eligible", "A drone can deliver it by 19:49:30 UTC.",
                               ex[Quote])],
            correlationId=correlation),
        "rejection": _message(
            "Rejection", "Rejection", "A message nestd did not accept, with every reason.",
            "Rejection",
            examples=[_example("swappedCoordinates", "lat_deg and lon_deg were swapped.",
                               ex[Rejection])]),
        "jobStatus": _message(
            "JobStatus", "Job status", "One lifecycle event of a job; seq numbers them.",
            "JobStatus",
            examples=[_example("enroute", "Flying to the door with the parcel aboard.",
                               ex[JobStatus])]),
        "deadLetter": _message(
            "DeadLetter", "Dead letter", "The raw bytes of a rejected message.", "DeadLetter",
            content_type="application/octet-stream"),
        "availability": _message(
            "Availability", "Availability", "online or offline.", "Availability",
            content_type="text/plain",
            examples=[_example("online", "Up and connected.", "online")]),
        "vehicleState": _message(
            "VehicleState", "Vehicle state", "Position, speed, battery, mode and link.",
            "VehicleState",
            examples=[_example("cruising", "On the way out.", VEHICLE_STATE_EXAMPLE)]),
        "vehicleEvent": _message(
            "VehicleEvent", "Vehicle event", "A mode change, link loss, status text, ...",
            "VehicleEvent",
            examples=[_example("modeChanged", "The autopilot switched to RTL.",
                               VEHICLE_EVENT_EXAMPLE)]),
    }


def build_channels() -> dict[str, Any]:
    t = Topics(STORE)
    spec: dict[str, tuple[str | None, list[str], str]] = {
        "jobSubmit": (t.jobs_submit, ["job"], "Orders for this store."),
        "jobCancel": (t.job_cancel(ORDER), ["cancelRequest"], "Cancel one order."),
        "jobStatus": (t.job_status(ORDER), ["jobStatus"],
                      "The order's latest status, retained: subscribe any time and get the "
                      "current state at once."),
        "jobEvents": (t.job_events(ORDER), ["jobStatus"],
                      "Every status change of the order, in seq order, not retained."),
        "jobsRejected": (t.jobs_rejected, ["rejection"],
                         "Every submission, cancel or quote request nestd did not accept."),
        "deadLetter": (t.deadletter, ["deadLetter"],
                       "The raw bytes of every rejected message, for operators."),
        "quoteRequest": (t.quote_request, ["quoteRequest"], "Quote requests."),
        "quoteResponses": (t.quote_responses, ["quote"],
                           "Quotes for requests that named no MQTT 5 response topic."),
        "responseTopic": (None, ["quote", "rejection", "jobStatus"],
                          "The MQTT 5 Response Topic a request named; its address is known "
                          "only at run time."),
        "daemonAvailability": (t.daemon_availability, ["availability"],
                               "Whether nestd is connected. Retained; the last will says "
                               "offline."),
        "vehicleState": (_vehicle_topic(t.vehicle_state), ["vehicleState"],
                         "Each vehicle's state at the telemetry rate (QoS 0: the next one "
                         "replaces a lost one)."),
        "vehicleAvailability": (_vehicle_topic(t.vehicle_availability), ["availability"],
                                "Whether nestd hears the vehicle. Retained."),
        "vehicleEvents": (_vehicle_topic(t.vehicle_events), ["vehicleEvent"],
                          "Vehicle events, as they happen."),
    }
    channels: dict[str, Any] = {}
    for cid, (address, messages, description) in spec.items():
        params = re.findall(r"\{(\w+)\}", address or "")
        channel: dict[str, Any] = {
            "address": address,
            "description": description,
            "messages": {m: _ref("components", "messages", m) for m in messages},
        }
        if params:
            channel["parameters"] = {p: _ref("components", "parameters", p) for p in params}
        channels[cid] = channel
    return channels


def _operation(action: Literal["send", "receive"], channel: str, messages: list[str],
               qos: int, retain: bool, summary: str,
               reply: list[str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "action": action,
        "channel": _ref("channels", channel),
        "messages": [_ref("channels", channel, "messages", m) for m in messages],
        "summary": summary,
        "bindings": {"mqtt": {"qos": qos, "retain": retain,
                              "bindingVersion": MQTT_BINDING_VERSION}},
    }
    if reply:
        op["reply"] = {
            "address": {"location": RESPONSE_TOPIC,
                        "description": "The request's MQTT 5 Response Topic, if it has one."},
            "channel": _ref("channels", "responseTopic"),
            "messages": [_ref("channels", "responseTopic", "messages", m) for m in reply],
        }
    return op


def build_operations() -> dict[str, Any]:
    return {
        "receiveJob": _operation(
            "receive", "jobSubmit", ["job"], 1, False,
            "nestd takes an order. Idempotent on order_id; the answer is on the job's status "
            "topics, or jobs/rejected.", reply=["rejection", "jobStatus"]),
        "receiveCancel": _operation(
            "receive", "jobCancel", ["cancelRequest"], 1, False,
            "nestd cancels an order: at once before launch; in flight before the drop the "
            "drone returns with the parcel (aborted); after the drop it is refused.",
            reply=["rejection"]),
        "receiveQuoteRequest": _operation(
            "receive", "quoteRequest", ["quoteRequest"], 1, False,
            "nestd quotes an order without taking it. The quote goes to the request's "
            "response topic, else to quote/responses.", reply=["quote", "rejection"]),
        "sendQuote": _operation(
            "send", "quoteResponses", ["quote"], 1, False,
            "A quote for a request that named no response topic."),
        "sendJobStatus": _operation(
            "send", "jobStatus", ["jobStatus"], 1, True, "The latest status, retained."),
        "sendJobEvent": _operation(
            "send", "jobEvents", ["jobStatus"], 1, False, "Every status change, in order."),
        "sendRejection": _operation(
            "send", "jobsRejected", ["rejection"], 1, False, "Why a message was not accepted."),
        "sendDeadLetter": _operation(
            "send", "deadLetter", ["deadLetter"], 1, False, "A rejected message, as received."),
        "sendDaemonAvailability": _operation(
            "send", "daemonAvailability", ["availability"], 1, True, "online / offline."),
        "sendVehicleState": _operation(
            "send", "vehicleState", ["vehicleState"], 0, False, "Vehicle state."),
        "sendVehicleAvailability": _operation(
            "send", "vehicleAvailability", ["availability"], 1, True, "online / offline."),
        "sendVehicleEvent": _operation(
            "send", "vehicleEvents", ["vehicleEvent"], 1, False, "Vehicle events."),
    }


_DESCRIPTION = f"""\
Delivery jobs, quotes, job status and vehicle telemetry between a retailer and one store's \
drone nest (nestd), over MQTT 5. Every topic starts with `nest/{{store_id}}/`.

**Perspective.** This document describes nestd. `receive` operations are what the retailer \
publishes and nestd consumes; `send` operations are what nestd publishes. A retailer's client \
does the opposite of each.

Payloads are UTF-8 JSON objects of at most {MAX_PAYLOAD_BYTES // 1024} KiB by default \
(larger ones are rejected unread). Times are RFC 3339 with a UTC offset; units are in the \
field names. Every object refuses unknown fields. The reference, with the job lifecycle, \
deduplication and cancel rules, is docs/mqtt-api.md.
"""


def build_document() -> dict[str, Any]:
    mqtt = MqttConfig()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "nestd job API",
            "version": str(API_VERSION),
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0",
                        "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "{host}:{port}",
                "protocol": "mqtt",
                "protocolVersion": "5",
                "description": "The store's MQTT broker (or a cluster serving many stores).",
                "variables": {
                    "host": {"default": mqtt.host, "description": "Broker host."},
                    "port": {"default": str(mqtt.port), "description": "Broker port."},
                },
                "security": [_ref("components", "securitySchemes", "userPassword")],
                "bindings": {"mqtt": {
                    "clientId": f"nestd-{STORE}",
                    "cleanSession": False,
                    "keepAlive": mqtt.keepalive_s,
                    "lastWill": {"topic": Topics(STORE).daemon_availability, "qos": 1,
                                 "message": "offline", "retain": True},
                    "bindingVersion": MQTT_BINDING_VERSION,
                }},
            },
        },
        "channels": build_channels(),
        "operations": build_operations(),
        "components": {
            "schemas": build_schemas(),
            "messages": build_messages(),
            "parameters": {
                "store_id": {"description": "The store's id: 1-63 of a-z 0-9 _ -.",
                             "examples": [_STORE_EXAMPLE]},
                "order_id": {"description": "The retailer's order id, as in the Job.",
                             "examples": ["ORD-2025-118734"]},
                "vehicle": {"description": "The vehicle's key: its MAVLink system id, or "
                                           "1000 and up where vehicles are told apart by "
                                           "address.",
                            "examples": ["2"]},
            },
            "securitySchemes": {
                "userPassword": {"type": "userPassword",
                                 "description": "Broker user name and password, where the "
                                                "broker asks for them."},
            },
        },
    }


def render() -> str:
    """The document as checked in: JSON, indent 2, sorted keys, a trailing newline."""
    return json.dumps(build_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nestd.jobs.asyncapi",
        description="Print the AsyncAPI 3.0 document of nestd's MQTT API.")
    parser.add_argument("--write", metavar="PATH", type=Path,
                        help="write it to PATH instead of standard output")
    args = parser.parse_args(argv)
    text = render()
    if args.write is None:
        sys.stdout.write(text)
    else:
        args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
