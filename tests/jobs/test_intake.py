"""Intake: every payload becomes a valid model or field-level reasons, and nothing raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestd.jobs.intake import (
    MAX_REASONS,
    order_id_hint,
    parse_cancel,
    parse_job,
    parse_quote_request,
)
from nestd.jobs.models import (
    MAX_PAYLOAD_BYTES,
    CancelRequest,
    Job,
    MethodPreference,
    Reason,
    ReasonCode,
)

STORE = "us-tx-richardson-0042"
NOW = datetime(2030, 6, 14, 19, 0, tzinfo=UTC)


def good_job(**changes: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "order_id": "ORD-2030-000123",
        "store_id": STORE,
        "destination": {"lat_deg": 32.97121, "lon_deg": -96.71835},
        "parcel": {"mass_kg": 1.4},
        "promised_by": "2030-06-14T15:30:00-05:00",  # 20:30 UTC, 90 min after NOW
    }
    job.update(changes)
    return job


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def reasons_of(raw: bytes, **kw: Any) -> list[Reason]:
    result = parse_job(raw, store_id=STORE, now=NOW, **kw)
    assert isinstance(result, list), f"expected reasons, got {result!r}"
    assert result, "a rejection must say why"
    return result


def only(reasons: list[Reason]) -> Reason:
    assert len(reasons) == 1, reasons
    return reasons[0]


def by_field(reasons: list[Reason], field: str) -> Reason:
    found = [r for r in reasons if r.field == field]
    assert len(found) == 1, (field, reasons)
    return found[0]


def with_destination(**dest: Any) -> bytes:
    return encode(good_job(destination=dest))


def with_parcel(**parcel: Any) -> bytes:
    return encode(good_job(parcel=parcel))


# -- valid jobs ---------------------------------------------------------------------------------


def test_complete_job_parses_with_every_field():
    payload = good_job(
        destination={"lat_deg": 32.97121, "lon_deg": -96.71835, "notes": "back garden"},
        parcel={"mass_kg": 1.4, "dimensions": {"length_cm": 30, "width_cm": 22,
                                               "height_cm": 12}},
        priority=9, method="winch", customer_ref="cust-77f3a9")
    job = parse_job(encode(payload), store_id=STORE, now=NOW)
    assert isinstance(job, Job)
    assert job.order_id == "ORD-2030-000123"
    assert job.destination.notes == "back garden"
    assert job.parcel.dimensions is not None and job.parcel.dimensions.height_cm == 12.0
    assert job.promised_by == datetime(2030, 6, 14, 20, 30, tzinfo=UTC)
    assert (job.priority, job.method, job.customer_ref) == (9, MethodPreference.WINCH,
                                                            "cust-77f3a9")


def test_minimal_job_gets_the_defaults():
    job = parse_job(encode(good_job()), store_id=STORE, now=NOW)
    assert isinstance(job, Job)
    assert (job.priority, job.method, job.customer_ref) == (0, MethodPreference.ANY, None)
    assert job.parcel.dimensions is None


def test_quote_request_is_read_like_a_job():
    job = parse_quote_request(encode(good_job()), store_id=STORE, now=NOW)
    assert isinstance(job, Job) and job.order_id == "ORD-2030-000123"


def test_quote_request_gets_the_same_checks_as_a_job():
    payload = encode(good_job(store_id="other-store", promised_by="2030-06-14T18:00:00Z"))
    reasons = parse_quote_request(payload, store_id=STORE, now=NOW)
    assert isinstance(reasons, list)
    assert {r.code for r in reasons} == {ReasonCode.WRONG_STORE, ReasonCode.DEADLINE_PASSED}


# -- the payload as a whole ---------------------------------------------------------------------


def test_oversize_payload_is_too_large_and_not_read():
    # Not even JSON: had it been read, the reason would be invalid_json.
    raw = b"\xff" * (MAX_PAYLOAD_BYTES + 1)
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.TOO_LARGE
    assert f"{MAX_PAYLOAD_BYTES + 1:,} bytes" in reason.message
    assert f"{MAX_PAYLOAD_BYTES:,} bytes" in reason.message


def test_payload_of_exactly_max_bytes_is_read():
    raw = encode(good_job(customer_ref="x"))
    job = parse_job(raw, store_id=STORE, now=NOW, max_bytes=len(raw))
    assert isinstance(job, Job)
    assert only(reasons_of(raw, max_bytes=len(raw) - 1)).code == ReasonCode.TOO_LARGE


def test_payload_that_is_not_utf8_is_invalid_json_naming_the_byte():
    raw = json.dumps(good_job(customer_ref="caf\u00e9"), ensure_ascii=False).encode()
    raw = raw.replace("caf\u00e9".encode(), b"caf\xe9")  # Latin-1, not UTF-8
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.INVALID_JSON
    assert "not UTF-8" in reason.message and "0xe9" in reason.message


def test_payload_with_a_byte_order_mark_is_invalid_json():
    reason = only(reasons_of(b"\xef\xbb\xbf" + encode(good_job())))
    assert reason.code == ReasonCode.INVALID_JSON
    assert "byte-order mark" in reason.message


@pytest.mark.parametrize("raw", [b"", b"  \n"])
def test_empty_payload_is_invalid_json(raw: bytes):
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.INVALID_JSON and "empty" in reason.message


@pytest.mark.parametrize("raw", [b"order please", b"{'order_id': 'A1'}", b'{"a": 1} {"b": 2}'])
def test_payload_that_is_not_json_is_invalid_json(raw: bytes):
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.INVALID_JSON
    assert reason.message.startswith("the payload is not valid JSON")
    assert "line 1 column" in reason.message


def test_truncated_json_says_it_ends_early():
    raw = encode(good_job())[:-20]
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.INVALID_JSON
    assert "ends early" in reason.message and "truncated" in reason.message


@pytest.mark.parametrize(("raw", "got"), [
    (b"[1, 2]", "an array"),
    (b"42", "42"),
    (b"null", "null"),
    (b'"ORD-1"', 'the string "ORD-1"'),
    (b"true", "true"),
])
def test_json_that_is_not_an_object_is_refused_naming_what_it_is(raw: bytes, got: str):
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.INVALID_JSON
    assert reason.message == f"the payload must be a JSON object {{...}}, got {got}"


def test_deep_nesting_is_refused_without_crashing():
    reason = only(reasons_of(b"[" * 10_000))
    assert reason.code == ReasonCode.INVALID_JSON and "nested too deeply" in reason.message


def test_deep_nesting_inside_a_field_is_refused_without_crashing():
    raw = encode(good_job()).replace(b'"parcel": {', b'"parcel": ' + b"[" * 5000 + b"{", 1)
    reason = only(reasons_of(raw, max_bytes=1 << 20))
    assert reason.code == ReasonCode.INVALID_JSON and "nested too deeply" in reason.message


def test_five_thousand_digit_integer_is_refused_without_crashing():
    raw = encode(good_job(priority=0)).replace(b'"priority": 0', b'"priority": ' + b"9" * 5000)
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.INVALID_JSON and "too long" in reason.message


def test_repeated_key_is_refused_because_its_meaning_is_ambiguous():
    raw = encode(good_job()).replace(b'"order_id":', b'"order_id": "ORD-OTHER", "order_id":')
    reason = only(reasons_of(raw))
    assert reason.code == ReasonCode.INVALID_FIELD and reason.field == "order_id"
    assert "more than once" in reason.message


def test_repeated_key_inside_an_object_is_named_by_its_path():
    raw = encode(good_job()).replace(b'"lon_deg":', b'"lon_deg": 1.0, "lon_deg":')
    assert only(reasons_of(raw)).field == "destination.lon_deg"


def test_repeated_key_inside_an_unknown_field_is_not_reported_again():
    raw = encode(good_job(extra={"a": 1})).replace(b'"a": 1', b'"a": 1, "a": 2')
    reason = only(reasons_of(raw))
    assert (reason.code, reason.field) == (ReasonCode.UNKNOWN_FIELD, "extra")


# -- fields: present, known, of the right type --------------------------------------------------


def test_each_missing_field_gets_its_own_reason():
    reasons = reasons_of(b"{}")
    assert [(r.code, r.field) for r in reasons] == [
        (ReasonCode.MISSING_FIELD, f)
        for f in ("order_id", "store_id", "destination", "parcel", "promised_by")]


def test_missing_nested_field_is_named_by_its_path_and_says_what_it_holds():
    reason = only(reasons_of(with_destination(lat_deg=32.9)))
    assert (reason.code, reason.field) == (ReasonCode.MISSING_FIELD, "destination.lon_deg")
    assert reason.message == ("destination.lon_deg is required: a number from -180 to 180 "
                              "degrees")


def test_unknown_field_is_refused_with_a_suggestion():
    reason = only(reasons_of(encode(good_job(prority=3))))
    assert (reason.code, reason.field) == (ReasonCode.UNKNOWN_FIELD, "prority")
    assert "did you mean priority?" in reason.message


def test_unknown_nested_field_lists_the_fields_allowed_there():
    dest = {"lat_deg": 32.9, "lon_deg": -96.7, "altitude_m": 5}
    reason = only(reasons_of(encode(good_job(destination=dest))))
    assert (reason.code, reason.field) == (ReasonCode.UNKNOWN_FIELD, "destination.altitude_m")
    assert reason.message.endswith("the fields here are lat_deg, lon_deg, notes")


@pytest.mark.parametrize(("raw", "field", "message"), [
    (with_parcel(mass_kg="1.2"), "parcel.mass_kg",
     'parcel.mass_kg must be a number more than 0 and at most 50 kg, got the string "1.2" '
     "(send the number without quotes)"),
    (with_destination(lat_deg=True, lon_deg=-96.7), "destination.lat_deg",
     "destination.lat_deg must be a number from -90 to 90 degrees, got true"),
    (encode(good_job(order_id=12345)), "order_id",
     "order_id must be 1 to 64 characters from A-Z a-z 0-9 . _ : -, starting with a letter "
     "or digit, got 12345"),
    (with_destination(lat_deg=32.9, lon_deg=-96.7, notes=7), "destination.notes",
     "destination.notes must be a string of at most 500 characters, got 7"),
    (encode(good_job(priority=1.5)), "priority",
     "priority must be a whole number from 0 to 9, got 1.5"),
    (encode(good_job(destination=[32.9, -96.7])), "destination",
     "destination must be an object with lat_deg and lon_deg, got an array"),
    (encode(good_job(parcel=None)), "parcel",
     "parcel must be an object with mass_kg, got null"),
])
def test_wrong_type_is_invalid_field_saying_what_was_expected(raw: bytes, field: str,
                                                              message: str):
    reason = only(reasons_of(raw))
    assert (reason.code, reason.field, reason.message) == (ReasonCode.INVALID_FIELD, field,
                                                           message)


@pytest.mark.parametrize(("literal", "shown"), [
    ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e400", "Infinity"),
])
def test_non_finite_number_is_invalid_on_its_field(literal: str, shown: str):
    raw = with_destination(lat_deg=32.9, lon_deg=-96.7).replace(b"-96.7", literal.encode())
    reason = only(reasons_of(raw))
    assert (reason.code, reason.field) == (ReasonCode.INVALID_FIELD, "destination.lon_deg")
    assert f"got {shown}" in reason.message


def test_huge_integer_in_a_number_field_is_described_not_printed():
    reason = only(reasons_of(encode(good_job(priority=10 ** 300))))
    assert reason.field == "priority"
    assert reason.message.endswith("got a number of about 300 digits")


# -- fields: values in range --------------------------------------------------------------------


@pytest.mark.parametrize(("lat", "lon", "field", "allowed"), [
    (90.5, -96.7, "destination.lat_deg", "from -90 to 90 degrees"),
    (-91, -96.7, "destination.lat_deg", "from -90 to 90 degrees"),
    (32.9, 180.01, "destination.lon_deg", "from -180 to 180 degrees"),
    (32.9, -200, "destination.lon_deg", "from -180 to 180 degrees"),
])
def test_coordinate_out_of_range_names_the_range(lat: float, lon: float, field: str,
                                                 allowed: str):
    reasons = reasons_of(with_destination(lat_deg=lat, lon_deg=lon))
    reason = by_field(reasons, field)
    assert reason.code == ReasonCode.INVALID_FIELD and allowed in reason.message
    assert ReasonCode.LAT_LON_SWAPPED not in {r.code for r in reasons}


def test_swapped_coordinates_get_a_swap_reason_as_well():
    reasons = reasons_of(with_destination(lat_deg=-96.71835, lon_deg=32.97121))
    assert [(r.code, r.field) for r in reasons] == [
        (ReasonCode.INVALID_FIELD, "destination.lat_deg"),
        (ReasonCode.LAT_LON_SWAPPED, "destination"),
    ]
    assert "swapped" in reasons[1].message


def test_latitude_that_no_swap_would_fix_gets_no_swap_reason():
    reasons = reasons_of(with_destination(lat_deg=200.0, lon_deg=32.9))
    assert [r.code for r in reasons] == [ReasonCode.INVALID_FIELD]


@pytest.mark.parametrize("mass_kg", [-1.0, 0, 0.0, 50.001, 1e9])
def test_mass_that_is_not_positive_or_is_too_heavy_names_the_range(mass_kg: float):
    reason = only(reasons_of(with_parcel(mass_kg=mass_kg)))
    assert (reason.code, reason.field) == (ReasonCode.INVALID_FIELD, "parcel.mass_kg")
    assert "more than 0 and at most 50 kg" in reason.message


def test_mass_of_exactly_fifty_kg_is_allowed():
    assert isinstance(parse_job(with_parcel(mass_kg=50), store_id=STORE, now=NOW), Job)


def test_each_dimension_out_of_range_gets_its_own_reason():
    dims = {"length_cm": 0, "width_cm": 200.5, "height_cm": -3}
    reasons = reasons_of(with_parcel(mass_kg=1.0, dimensions=dims))
    assert [r.field for r in reasons] == ["parcel.dimensions.length_cm",
                                          "parcel.dimensions.width_cm",
                                          "parcel.dimensions.height_cm"]
    assert all("more than 0 and at most 200 cm" in r.message for r in reasons)


@pytest.mark.parametrize("priority", [-1, 10])
def test_priority_out_of_range_names_the_range(priority: int):
    reason = only(reasons_of(encode(good_job(priority=priority))))
    assert reason.field == "priority" and "from 0 to 9" in reason.message


def test_unknown_method_lists_the_methods():
    reason = only(reasons_of(encode(good_job(method="parachute"))))
    assert reason.field == "method"
    assert reason.message == ('method must be one of any, winch, land, got the string '
                              '"parachute"')


@pytest.mark.parametrize("order_id", ["ORD 1", "-ORD1", "ORD/1", "ORD#1", "", "ÖRD1"])
def test_order_id_with_characters_outside_the_set_is_refused(order_id: str):
    reason = only(reasons_of(encode(good_job(order_id=order_id))))
    assert (reason.code, reason.field) == (ReasonCode.INVALID_FIELD, "order_id")
    assert "A-Z a-z 0-9 . _ : -" in reason.message


def test_order_id_longer_than_64_characters_is_refused_saying_how_long_it_is():
    assert isinstance(parse_job(encode(good_job(order_id="A" * 64)), store_id=STORE,
                                now=NOW), Job)
    reason = only(reasons_of(encode(good_job(order_id="A" * 65))))
    assert reason.field == "order_id" and "got a string of 65 characters" in reason.message


def test_overlong_free_text_says_the_limit():
    reason = only(reasons_of(encode(good_job(customer_ref="x" * 129))))
    assert reason.field == "customer_ref"
    assert "at most 128 characters, got a string of 129 characters" in reason.message


# -- store and deadline -------------------------------------------------------------------------


def test_job_for_another_store_is_wrong_store_naming_this_one():
    reason = only(reasons_of(encode(good_job(store_id="us-tx-plano-0007"))))
    assert (reason.code, reason.field) == (ReasonCode.WRONG_STORE, "store_id")
    assert f'this daemon serves store "{STORE}"' in reason.message
    assert '"us-tx-plano-0007"' in reason.message


def test_malformed_store_id_is_invalid_not_wrong_store():
    reason = only(reasons_of(encode(good_job(store_id="Store 42"))))
    assert reason.code == ReasonCode.INVALID_FIELD


@pytest.mark.parametrize("promised_by", ["2030-06-14T15:30:00", "2030-06-14 15:30"])
def test_promised_by_without_a_utc_offset_is_refused(promised_by: str):
    reason = only(reasons_of(encode(good_job(promised_by=promised_by))))
    assert (reason.code, reason.field) == (ReasonCode.INVALID_FIELD, "promised_by")
    assert reason.message.endswith("which has no UTC offset")


@pytest.mark.parametrize("promised_by", ["tomorrow", "2030-06-14", "2030-13-01T00:00:00Z",
                                         1_900_000_000])
def test_promised_by_that_is_not_a_date_time_is_refused_with_an_example(promised_by: Any):
    reason = only(reasons_of(encode(good_job(promised_by=promised_by))))
    assert (reason.code, reason.field) == (ReasonCode.INVALID_FIELD, "promised_by")
    assert "RFC 3339 date-time with a UTC offset, such as" in reason.message


@pytest.mark.parametrize("delta", [timedelta(minutes=-5), timedelta(0)])
def test_promised_by_in_the_past_or_now_is_deadline_passed(delta: timedelta):
    promised = (NOW + delta).isoformat()
    reason = only(reasons_of(encode(good_job(promised_by=promised))))
    assert (reason.code, reason.field) == (ReasonCode.DEADLINE_PASSED, "promised_by")


def test_promised_by_one_second_ahead_is_accepted():
    promised = (NOW + timedelta(seconds=1)).isoformat()
    assert isinstance(parse_job(encode(good_job(promised_by=promised)), store_id=STORE,
                                now=NOW), Job)


def test_promised_by_compares_instants_not_wall_clock_digits():
    # 14:30 in Texas (UTC-5) is 19:30 UTC, after NOW (19:00 UTC), though "14" < "19".
    payload = encode(good_job(promised_by="2030-06-14T14:30:00-05:00"))
    assert isinstance(parse_job(payload, store_id=STORE, now=NOW), Job)


def test_naive_now_is_a_programming_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_job(encode(good_job()), store_id=STORE, now=datetime(2030, 6, 14, 19, 0))


# -- all at once --------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once():
    payload = good_job(store_id="us-tx-plano-0007", promised_by="2030-06-14T18:00:00Z",
                       destination={"lat_deg": 32.9}, parcel={"mass_kg": 0}, colour="red")
    reasons = reasons_of(encode(payload))
    assert {(r.code, r.field) for r in reasons} == {
        (ReasonCode.MISSING_FIELD, "destination.lon_deg"),
        (ReasonCode.INVALID_FIELD, "parcel.mass_kg"),
        (ReasonCode.UNKNOWN_FIELD, "colour"),
        (ReasonCode.WRONG_STORE, "store_id"),
        (ReasonCode.DEADLINE_PASSED, "promised_by"),
    }


def test_thousands_of_problems_are_capped_with_a_count():
    payload = {f"f{i}": 0 for i in range(1000)}
    reasons = reasons_of(encode(payload))
    assert len(reasons) == MAX_REASONS
    assert reasons[-1].message == f"and {5 + 1000 - (MAX_REASONS - 1)} more problems, not listed"


# -- cancel -------------------------------------------------------------------------------------


def test_empty_cancel_payload_is_a_cancel_without_reason():
    assert parse_cancel(b"") == CancelRequest(reason=None)


def test_cancel_with_a_reason_keeps_it():
    assert parse_cancel(b'{"reason": "customer changed their mind"}') == CancelRequest(
        reason="customer changed their mind")


def test_cancel_with_an_unknown_field_is_refused():
    result = parse_cancel(b'{"why": "moved house"}')
    assert isinstance(result, list)
    reason = only(result)
    assert (reason.code, reason.field) == (ReasonCode.UNKNOWN_FIELD, "why")


@pytest.mark.parametrize(("raw", "code"), [
    (b'{"reason": 5}', ReasonCode.INVALID_FIELD),
    (b'{"reason": "' + b"x" * 201 + b'"}', ReasonCode.INVALID_FIELD),
    (b"cancel it", ReasonCode.INVALID_JSON),
    (b"null", ReasonCode.INVALID_JSON),
    (b"\xfe", ReasonCode.INVALID_JSON),
    (b" " * (MAX_PAYLOAD_BYTES + 1), ReasonCode.TOO_LARGE),
])
def test_bad_cancel_payload_is_refused(raw: bytes, code: ReasonCode):
    result = parse_cancel(raw)
    assert isinstance(result, list)
    assert [r.code for r in result] == [code]


# -- order id hint ------------------------------------------------------------------------------


def test_order_id_hint_reads_a_payload_that_failed_validation():
    raw = encode(good_job(parcel={"mass_kg": -1}, colour="red"))
    assert order_id_hint(raw) == "ORD-2030-000123"


def test_order_id_hint_reads_truncated_json():
    assert order_id_hint(b'{"order_id": "ORD-7", "store_id": "us-tx') == "ORD-7"


def test_order_id_hint_ignores_an_order_id_cut_off_mid_string():
    assert order_id_hint(b'{"store_id": "s", "order_id": "ORD-7') is None


@pytest.mark.parametrize("raw", [
    b"\xff\xfe", b"not json", b"[]", b'{"order_id": 42}', b'{"order_id": "ORD 7"}',
    b'{"order_id": "' + b"A" * 65 + b'"}', b'{"order_id": "ORD-7\\n"}',
    b'{"parcel": {"order_id": "ORD-7"}}',
])
def test_order_id_hint_is_none_without_a_valid_order_id(raw: bytes):
    assert order_id_hint(raw) is None


def test_order_id_hint_does_not_read_oversize_payloads():
    raw = encode(good_job(customer_ref="x" * MAX_PAYLOAD_BYTES))
    assert order_id_hint(raw) is None
    assert order_id_hint(raw, max_bytes=len(raw)) == "ORD-2030-000123"


# -- never raises -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)
# Valid jobs with some fields replaced, so the checks past the JSON layer are exercised too.
near_jobs = st.builds(
    lambda base, repl: {**base, **repl},
    st.just(good_job(destination={"lat_deg": 32.9, "lon_deg": -96.7},
                     parcel={"mass_kg": 1.0, "dimensions": {"length_cm": 10, "width_cm": 10,
                                                            "height_cm": 10}})),
    st.dictionaries(st.sampled_from(["order_id", "store_id", "destination", "parcel",
                                     "promised_by", "priority", "method", "customer_ref",
                                     "extra"]), json_values, max_size=3),
)


def assert_job_or_reasons(result: Job | list[Reason]) -> None:
    if isinstance(result, Job):
        return
    assert isinstance(result, list) and result
    codes = {c.value for c in ReasonCode}
    for r in result:
        assert isinstance(r, Reason) and r.code in codes and r.message
        if r.field is not None:
            assert r.field[:40] in r.message, r


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes):
    assert_job_or_reasons(parse_job(raw, store_id=STORE, now=NOW))
    cancel = parse_cancel(raw)
    assert isinstance(cancel, CancelRequest) or (isinstance(cancel, list) and cancel)
    hint = order_id_hint(raw)
    assert hint is None or isinstance(hint, str)


@settings(max_examples=300, deadline=None)
@given(json_values | near_jobs)
def test_arbitrary_json_values_never_raise(value: Any):
    raw = json.dumps(value).encode()  # NaN and Infinity come out as literals, as intended
    assert_job_or_reasons(parse_job(raw, store_id=STORE, now=NOW))
    assert_job_or_reasons(parse_quote_request(raw, store_id=STORE, now=NOW))
    cancel = parse_cancel(raw)
    assert isinstance(cancel, CancelRequest) or (isinstance(cancel, list) and cancel)
