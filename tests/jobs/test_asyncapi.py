"""The AsyncAPI document: checked in as generated, consistent with Topics, examples valid."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nestd.jobs.asyncapi import build_document, main, model_examples, render
from nestd.jobs.intake import parse_job
from nestd.jobs.lifecycle import TRANSITIONS, JobState
from nestd.jobs.models import CancelRequest, Job, JobStatus, Quote, ReasonCode, Rejection
from nestd.mavlink.health import LinkHealth
from nestd.mavlink.state import VehicleState
from nestd.telemetry import Topics, state_message

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "asyncapi.json"
MQTT_API_MD = ROOT / "docs" / "mqtt-api.md"
REGENERATE = "run python -m nestd.jobs.asyncapi --write docs/asyncapi.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_document()


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs_in(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs_in(v)]
    return []


# -- the checked-in copy ------------------------------------------------------------------------


def test_checked_in_document_is_what_the_code_builds(doc: dict[str, Any]):
    assert CHECKED_IN.exists(), REGENERATE
    text = CHECKED_IN.read_text(encoding="utf-8")
    assert json.loads(text) == doc, REGENERATE
    assert text == render(), REGENERATE  # same bytes: indent 2, sorted keys, newline


def test_main_prints_the_document_or_writes_it(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]):
    assert main([]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "asyncapi.json"
    assert main(["--write", str(out)]) == 0
    written = out.read_text(encoding="utf-8")
    assert printed == written
    assert written.endswith("}\n")
    assert written == json.dumps(json.loads(written), indent=2, sort_keys=True,
                                 ensure_ascii=False) + "\n"


# -- structure ----------------------------------------------------------------------------------


def test_document_is_asyncapi_3_over_mqtt_5(doc: dict[str, Any]):
    assert doc["asyncapi"] == "3.0.0"
    (server,) = doc["servers"].values()
    assert (server["protocol"], server["protocolVersion"]) == ("mqtt", "5")
    session = server["bindings"]["mqtt"]
    assert session["cleanSession"] is False
    assert session["lastWill"] == {"topic": "nest/{store_id}/daemon/availability", "qos": 1,
                                   "message": "offline", "retain": True}


def test_description_states_the_perspective_of_operations(doc: dict[str, Any]):
    assert "This document describes nestd" in doc["info"]["description"]
    assert {op["action"] for op in doc["operations"].values()} == {"send", "receive"}


def test_every_channel_address_is_under_the_store_prefix(doc: dict[str, Any]):
    dynamic = {cid for cid, c in doc["channels"].items() if c["address"] is None}
    assert dynamic == {"responseTopic"}
    for cid, channel in doc["channels"].items():
        if cid not in dynamic:
            assert channel["address"].startswith("nest/{store_id}/"), cid


def test_channel_addresses_are_the_topics_the_code_uses(doc: dict[str, Any]):
    t = Topics("s1")
    expected = {
        t.jobs_submit, t.job_cancel("O1"), t.job_status("O1"), t.job_events("O1"),
        t.jobs_rejected, t.deadletter, t.quote_request, t.quote_responses,
        t.daemon_availability, t.vehicle_state(7), t.vehicle_availability(7),
        t.vehicle_events(7),
    }
    addresses = {c["address"].replace("{store_id}", "s1").replace("{order_id}", "O1")
                 .replace("{vehicle}", "7")
                 for c in doc["channels"].values() if c["address"] is not None}
    assert addresses == expected


def test_every_address_parameter_is_declared_and_described(doc: dict[str, Any]):
    for cid, channel in doc["channels"].items():
        names = re.findall(r"\{(\w+)\}", channel["address"] or "")
        declared = channel.get("parameters", {})
        assert sorted(declared) == sorted(names), cid
        for ref in declared.values():
            assert resolve(doc, ref["$ref"])["description"]


def test_every_ref_in_the_document_resolves(doc: dict[str, Any]):
    refs = refs_in(doc)
    assert len(refs) > 50
    for ref in refs:
        resolve(doc, ref)


def test_every_message_payload_is_a_ref_that_resolves_to_a_schema(doc: dict[str, Any]):
    for mid, message in doc["components"]["messages"].items():
        schema = resolve(doc, message["payload"]["$ref"])
        assert "type" in schema or "enum" in schema, mid


def test_no_ref_has_siblings_that_json_schema_draft_7_would_ignore(doc: dict[str, Any]):
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node or len(node) == 1, path
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(doc["components"]["schemas"], "#/components/schemas")


def test_model_messages_carry_the_models_schemas(doc: dict[str, Any]):
    payloads = {mid: m["payload"]["$ref"].rsplit("/", 1)[-1]
                for mid, m in doc["components"]["messages"].items()}
    assert payloads["job"] == payloads["quoteRequest"] == "Job"
    assert payloads["cancelRequest"] == "CancelRequest"
    assert (payloads["quote"], payloads["rejection"], payloads["jobStatus"]) == (
        "Quote", "Rejection", "JobStatus")
    job = doc["components"]["schemas"]["Job"]
    assert job["additionalProperties"] is False
    assert set(job["required"]) == {n for n, f in Job.model_fields.items() if f.is_required()}


def test_operations_send_only_messages_of_their_channel(doc: dict[str, Any]):
    for oid, op in doc["operations"].items():
        channel = op["channel"]["$ref"]
        for m in op["messages"]:
            assert m["$ref"].startswith(channel + "/messages/"), oid
        if "reply" in op:
            reply_channel = op["reply"]["channel"]["$ref"]
            for m in op["reply"]["messages"]:
                assert m["$ref"].startswith(reply_channel + "/messages/"), oid


# Written out by hand: a change to the API's delivery guarantees must change this table too.
EXPECTED_DELIVERY = {
    "receiveJob": ("receive", "jobSubmit", 1, False),
    "receiveCancel": ("receive", "jobCancel", 1, False),
    "receiveQuoteRequest": ("receive", "quoteRequest", 1, False),
    "sendQuote": ("send", "quoteResponses", 1, False),
    "sendJobStatus": ("send", "jobStatus", 1, True),
    "sendJobEvent": ("send", "jobEvents", 1, False),
    "sendRejection": ("send", "jobsRejected", 1, False),
    "sendDeadLetter": ("send", "deadLetter", 1, False),
    "sendDaemonAvailability": ("send", "daemonAvailability", 1, True),
    "sendVehicleState": ("send", "vehicleState", 0, False),
    "sendVehicleAvailability": ("send", "vehicleAvailability", 1, True),
    "sendVehicleEvent": ("send", "vehicleEvents", 1, False),
}


def test_operations_have_the_documented_direction_qos_and_retain(doc: dict[str, Any]):
    actual = {
        oid: (op["action"], op["channel"]["$ref"].rsplit("/", 1)[-1],
              op["bindings"]["mqtt"]["qos"], op["bindings"]["mqtt"]["retain"])
        for oid, op in doc["operations"].items()
    }
    assert actual == EXPECTED_DELIVERY


def test_quote_request_is_answered_on_its_mqtt5_response_topic(doc: dict[str, Any]):
    op = doc["operations"]["receiveQuoteRequest"]
    assert op["reply"]["address"]["location"] == "$message.header#/responseTopic"
    assert resolve(doc, op["reply"]["channel"]["$ref"])["address"] is None
    assert {m["$ref"].rsplit("/", 1)[-1] for m in op["reply"]["messages"]} == {
        "quote", "rejection"}
    request = doc["components"]["messages"]["quoteRequest"]
    assert set(request["bindings"]["mqtt"]) >= {"responseTopic", "correlationData"}
    assert request["correlationId"] == doc["components"]["messages"]["quote"]["correlationId"]


# -- examples -----------------------------------------------------------------------------------


def test_there_is_an_example_for_every_model():
    assert set(model_examples()) == {Job, CancelRequest, Quote, Rejection, JobStatus}


@pytest.mark.parametrize("model", [Job, CancelRequest, Quote, Rejection, JobStatus],
                         ids=lambda m: m.__name__)
def test_model_example_round_trips_through_its_model(model: Any):
    example = model_examples()[model]
    parsed = model.model_validate_json(json.dumps(example))
    # Exactly what nestd would publish for it: no field missing, extra or formatted otherwise.
    assert parsed.model_dump(mode="json", exclude_none=True) == example


def test_job_example_is_accepted_by_intake():
    example = model_examples()[Job]
    job = parse_job(json.dumps(example).encode(), store_id=example["store_id"],
                    now=datetime(2025, 6, 14, 19, 0, tzinfo=UTC))
    assert isinstance(job, Job)


def test_every_model_example_is_in_the_document(doc: dict[str, Any]):
    examples = [ex["payload"] for m in doc["components"]["messages"].values()
                for ex in m.get("examples", [])]
    for model, example in model_examples().items():
        assert example in examples, model.__name__


def test_message_examples_validate_against_their_payload_schemas(doc: dict[str, Any]):
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT7

    registry = referencing.Registry().with_resource(
        "urn:nestd:asyncapi", referencing.Resource(contents=doc, specification=DRAFT7))
    checked = 0
    for mid, message in doc["components"]["messages"].items():
        schema = {"$ref": "urn:nestd:asyncapi" + message["payload"]["$ref"]}
        validator = jsonschema.Draft7Validator(schema, registry=registry)
        for example in message.get("examples", []):
            errors = [e.message for e in validator.iter_errors(example["payload"])]
            assert not errors, (mid, example["name"], errors)
            checked += 1
    assert checked >= 9


def test_vehicle_state_schema_lists_exactly_what_telemetry_publishes(doc: dict[str, Any]):
    vehicle = SimpleNamespace(sysid=3, state=VehicleState(3, 1), health=LinkHealth())
    message = state_message(vehicle, 0.0)
    schema = doc["components"]["schemas"]["VehicleState"]
    assert set(schema["properties"]) == set(schema["required"]) == set(message)
    link = schema["properties"]["link"]
    assert set(link["properties"]) == set(link["required"]) == set(message["link"])


# -- the reference in docs/mqtt-api.md ----------------------------------------------------------


def test_json_examples_in_the_mqtt_api_reference_are_the_documents_examples(
        doc: dict[str, Any]):
    blocks = re.findall(r"```json\n(.*?)```", MQTT_API_MD.read_text(encoding="utf-8"),
                        flags=re.DOTALL)
    examples = [ex["payload"] for m in doc["components"]["messages"].values()
                for ex in m.get("examples", [])]
    assert len(blocks) >= 5
    for block in blocks:
        assert json.loads(block) in examples, block[:80]


def test_mqtt_api_reference_points_to_the_asyncapi_document():
    assert "asyncapi.json" in MQTT_API_MD.read_text(encoding="utf-8")


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table under `heading`, header row and rule left out."""
    section = markdown.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_lifecycle_table_in_the_reference_matches_the_state_machine():
    rows = table_rows(MQTT_API_MD.read_text(encoding="utf-8"), "### Lifecycle")
    documented = {
        state.strip("`"): set() if nxt == "—" else {s.strip(" `") for s in nxt.split(",")}
        for state, _, nxt in rows
    }
    assert documented == {s.value: {t.value for t in TRANSITIONS[s]} for s in JobState}


def test_every_reason_code_is_in_the_reference():
    rows = table_rows(MQTT_API_MD.read_text(encoding="utf-8"), "## Reason codes")
    assert sorted(r[0].strip("`") for r in rows) == sorted(c.value for c in ReasonCode)
