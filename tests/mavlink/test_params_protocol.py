"""Parameter read/read-all/set state machines and the PX4/ArduPilot value encodings."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nestsim.flavour import ARDUCOPTER, PX4, Flavour, ParamType
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.errors import ParamError, ParamTimeout
from nestd.mavlink.protocols.params import (
    INDEX_NONE,
    MAX_RETRIES,
    Encoding,
    ParamRead,
    ParamReadAll,
    ParamSet,
    ParamStatus,
    Step,
    decode_value,
    encode_value,
    param_id_bytes,
    param_name,
    values_equal,
)
from tests.mavlink.fakes import DOWN, UP, VEHICLE, LossyLink, ParamPeer, Scripted, run

T0 = 1000.0
INT8, INT16, INT32 = mav.MAV_PARAM_TYPE_INT8, mav.MAV_PARAM_TYPE_INT16, mav.MAV_PARAM_TYPE_INT32
UINT8, UINT16, UINT32 = (
    mav.MAV_PARAM_TYPE_UINT8,
    mav.MAV_PARAM_TYPE_UINT16,
    mav.MAV_PARAM_TYPE_UINT32,
)
REAL32 = mav.MAV_PARAM_TYPE_REAL32


def value_msg(
    name: str | bytes, wire: float, ptype: int = REAL32, index: int = 0, count: int = 10
) -> mav.MAVLink_message:
    pid = name.encode() if isinstance(name, str) else name
    return mav.MAVLink_param_value_message(pid, wire, ptype, count, index)


def _is_snan_bits(bits: int) -> bool:
    return bits & 0x7F800000 == 0x7F800000 and bool(bits & 0x007FFFFF) and not bits & 0x00400000


# -- encoding -------------------------------------------------------------------------------


@given(st.integers(-(2**31), 2**31 - 1))
def test_bytewise_int32_roundtrip_or_clean_refusal(value: int) -> None:
    bits = value & 0xFFFFFFFF
    if _is_snan_bits(bits):
        with pytest.raises(ValueError, match="bytewise"):
            encode_value(value, INT32, "bytewise")
        return
    wire = encode_value(value, INT32, "bytewise")
    # What PX4 puts in the union is exactly the integer's bits.
    assert struct.unpack("<I", struct.pack("<f", wire))[0] == bits
    assert decode_value(wire, INT32, "bytewise") == value


@pytest.mark.parametrize(
    ("ptype", "lo", "hi"),
    [(INT8, -128, 127), (UINT8, 0, 255), (INT16, -32768, 32767), (UINT16, 0, 65535)],
)
def test_bytewise_small_int_types_roundtrip(ptype: int, lo: int, hi: int) -> None:
    for value in (lo, -1 if lo < 0 else 1, 0, hi):
        wire = encode_value(value, ptype, "bytewise")
        result = decode_value(wire, ptype, "bytewise")
        assert result == value and isinstance(result, int)


def test_bytewise_uint32_roundtrip() -> None:
    for value in (0, 1, 2**31, 2**32 - 2):
        wire = encode_value(value, UINT32, "bytewise")
        assert decode_value(wire, UINT32, "bytewise") == value


def test_bytewise_matches_the_simulators_px4_encoding() -> None:
    def bits(f: float) -> bytes:
        return struct.pack("<f", f)  # -5 travels as a NaN: compare bits, not floats

    for value in (0, 1, 4001, 22027, -5):
        ours = encode_value(value, INT32, "bytewise")
        assert bits(ours) == bits(PX4.encode_param(value, ParamType.INT32))


@given(st.integers(-(2**24), 2**24))
def test_c_cast_int_roundtrip(value: int) -> None:
    wire = encode_value(value, INT32, "c_cast")
    assert wire == float(value) == ARDUCOPTER.encode_param(value, ParamType.INT32)
    assert decode_value(wire, INT32, "c_cast") == value


def test_real32_is_plain_float_either_way() -> None:
    for enc in ("bytewise", "c_cast"):
        assert encode_value(0.25, REAL32, enc) == 0.25
        result = decode_value(60.5, REAL32, enc)
        assert result == 60.5 and isinstance(result, float)


def test_ints_decode_to_int_and_reals_to_float() -> None:
    assert isinstance(decode_value(3.0, INT16, "c_cast"), int)
    assert isinstance(decode_value(3.0, REAL32, "c_cast"), float)


@pytest.mark.parametrize(
    ("value", "ptype", "encoding"),
    [(1.5, INT32, "c_cast"), (300, INT8, "bytewise"), (70000, INT16, "c_cast"), (1, 99, "c_cast")],
)
def test_unencodable_values_are_refused(value: float, ptype: int, encoding: Encoding) -> None:
    with pytest.raises((ValueError, struct.error)):
        encode_value(value, ptype, encoding)


def test_values_equal_at_float32_precision() -> None:
    assert values_equal(0.1, 0.10000000149011612, REAL32)
    assert not values_equal(0.1, 0.1001, REAL32)
    assert values_equal(math.nan, math.nan, REAL32)
    assert values_equal(5, 5, INT32) and not values_equal(5, 6, INT32)


@pytest.mark.parametrize(
    "raw", ["RTL_ALT", b"RTL_ALT", b"RTL_ALT\0\0\0\0\0\0\0\0\0", "RTL_ALT\0\0\0", b"RTL_ALT\0junk"]
)
def test_param_name_from_str_or_nul_padded_bytes(raw: str | bytes) -> None:
    assert param_name(raw) == "RTL_ALT"


def test_param_name_of_full_sixteen_chars_has_no_terminator() -> None:
    assert param_name(b"ABCDEFGHIJKLMNOP") == "ABCDEFGHIJKLMNOP"
    assert param_id_bytes("ABCDEFGHIJKLMNOP") == b"ABCDEFGHIJKLMNOP"


@pytest.mark.parametrize("bad", ["", "ABCDEFGHIJKLMNOPQ", "NUL\0IN"])
def test_bad_param_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="parameter name"):
        ParamRead(VEHICLE, bad, encoding="c_cast")


# -- read one -------------------------------------------------------------------------------


def test_param_read_requests_by_name() -> None:
    r = ParamRead(VEHICLE, "RTL_ALT", encoding="c_cast")
    (msg,) = r.start(T0)
    assert msg.get_type() == "PARAM_REQUEST_READ"
    assert (msg.target_system, param_name(msg.param_id), msg.param_index) == (
        VEHICLE[0],
        "RTL_ALT",
        -1,
    )
    r.on_message(value_msg("RTL_RETURN_ALT", 1.0), T0)  # not ours
    assert not r.done and r.ignored == 1
    r.on_message(value_msg("RTL_ALT", 1500.0, INT16, index=25), T0)
    res = r.result
    assert res.ok and res.value == 1500 and isinstance(res.value, int)
    assert res.param is not None and res.param.index == 25


def test_param_read_retries_then_times_out() -> None:
    r = ParamRead(VEHICLE, "RTL_ALT", encoding="c_cast")
    sent = r.start(T0)
    k = 0
    while not r.done:
        k += 1
        sent += r.on_timer(T0 + k)
    assert len(sent) == MAX_RETRIES + 1 and r.result.status is ParamStatus.TIMEOUT
    with pytest.raises(ParamTimeout) as err:
        r.result.raise_for_status()
    assert err.value.name == "RTL_ALT"


def test_param_read_through_the_link_px4_int() -> None:
    r = ParamRead(VEHICLE, "CBRK_IO_SAFETY", encoding="bytewise")
    run(r, ParamPeer(PX4))
    assert r.result.value == 22027


def test_param_read_survives_a_lost_reply() -> None:
    link = LossyLink(drop_next={(DOWN, "PARAM_VALUE"): 2})
    r = ParamRead(VEHICLE, "RTL_ALT", encoding="c_cast")
    run(r, ParamPeer(ARDUCOPTER), link)
    assert r.result.value == 1500 and r.result.attempts == 3


# -- set ------------------------------------------------------------------------------------


def test_param_set_bytewise_int_roundtrip() -> None:
    peer = ParamPeer(PX4)
    s = ParamSet(VEHICLE, "NAV_DLL_ACT", 2, INT32, encoding="bytewise")
    run(s, peer)
    assert s.result.ok and s.result.value == 2
    assert peer.values["NAV_DLL_ACT"] == 2.0  # nestsim decoded the raw bits to 2, not 2.8e-45


def test_param_set_bytewise_negative_int() -> None:
    peer = ParamPeer(PX4)
    s = ParamSet(VEHICLE, "COM_DL_LOSS_T", -1, INT32, encoding="bytewise")
    run(s, peer)
    assert s.result.ok and peer.values["COM_DL_LOSS_T"] == -1.0


def test_param_set_c_cast_int_roundtrip() -> None:
    peer = ParamPeer(ARDUCOPTER)
    s = ParamSet(VEHICLE, "RTL_ALT", 3000, INT16, encoding="c_cast")
    run(s, peer)
    assert s.result.ok and s.result.value == 3000 and peer.values["RTL_ALT"] == 3000.0


def test_param_set_real32_tolerates_float32_rounding() -> None:
    peer = ParamPeer(PX4)
    s = ParamSet(VEHICLE, "BAT_LOW_THR", 0.1, REAL32, encoding="bytewise")
    run(s, peer)
    assert s.result.ok and s.result.value != 0.1 and s.result.value == pytest.approx(0.1)


def test_param_set_sends_param_set_with_encoded_value() -> None:
    s = ParamSet(VEHICLE, "NAV_DLL_ACT", 2, INT32, encoding="bytewise")
    (msg,) = s.start(T0)
    assert msg.get_type() == "PARAM_SET" and param_name(msg.param_id) == "NAV_DLL_ACT"
    assert msg.param_type == INT32 and struct.pack("<f", msg.param_value) == struct.pack("<i", 2)


def test_param_set_retries_when_echo_lost() -> None:
    link = LossyLink(drop_next={(DOWN, "PARAM_VALUE"): 1})
    peer = ParamPeer(ARDUCOPTER)
    s = ParamSet(VEHICLE, "FENCE_ACTION", 2, INT8, encoding="c_cast")
    run(s, peer, link)
    assert s.result.ok and s.result.attempts == 2 and len(peer.sets) == 2


def test_param_set_times_out_without_echo() -> None:
    s = ParamSet(VEHICLE, "FENCE_ACTION", 2, INT8, encoding="c_cast")
    sent = s.start(T0)
    k = 0
    while not s.done:
        k += 1
        sent += s.on_timer(T0 + k)
    assert len(sent) == MAX_RETRIES + 1 and s.result.status is ParamStatus.TIMEOUT
    with pytest.raises(ParamTimeout):
        s.result.raise_for_status()


def test_param_set_rejected_when_vehicle_keeps_another_value() -> None:
    peer = ParamPeer(ARDUCOPTER, refuse={"RTL_ALT": 8000.0})  # e.g. clamped to its range
    s = ParamSet(VEHICLE, "RTL_ALT", 30000, INT16, encoding="c_cast", max_retries=2)
    run(s, peer)
    res = s.result
    assert res.status is ParamStatus.REJECTED and res.value == 8000 and res.requested == 30000
    assert res.attempts == 3
    with pytest.raises(ParamError, match="8000"):
        res.raise_for_status()


def test_param_set_late_echo_of_old_value_then_new_value() -> None:
    s = ParamSet(VEHICLE, "RTL_ALT", 3000, INT16, encoding="c_cast")
    s.start(T0)
    resend = s.on_message(value_msg("RTL_ALT", 1500.0, INT16), T0 + 0.1)
    assert [m.get_type() for m in resend] == ["PARAM_SET"]
    s.on_message(value_msg("RTL_ALT", 3000.0, INT16), T0 + 0.2)
    assert s.result.ok and s.result.attempts == 2


def test_param_set_ignores_other_params() -> None:
    s = ParamSet(VEHICLE, "RTL_ALT", 3000, INT16, encoding="c_cast")
    s.start(T0)
    assert s.on_message(value_msg("RTL_ALT_FINAL", 0.0, INT16), T0) == []
    assert not s.done and s.ignored == 1


def test_param_set_refuses_an_int_that_bytewise_would_corrupt() -> None:
    # -5_000_000's bits are a signalling NaN, which a Python float can't carry unchanged.
    with pytest.raises(ValueError, match="bytewise"):
        ParamSet(VEHICLE, "SOME_INT", -5_000_000, INT32, encoding="bytewise")


@pytest.mark.parametrize("seed", range(3))
def test_param_set_through_a_20_percent_lossy_link(seed: int) -> None:
    peer = ParamPeer(PX4)
    link = LossyLink(seed=seed, loss_up=0.2, loss_down=0.2, duplicate=0.1, reorder=0.2)
    s = ParamSet(VEHICLE, "GF_ACTION", 3, INT32, encoding="bytewise")
    run(s, peer, link)
    assert s.result.ok and peer.values["GF_ACTION"] == 3.0


# -- read all -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavour", "encoding"), [(PX4, "bytewise"), (ARDUCOPTER, "c_cast")], ids=["px4", "ardupilot"]
)
def test_param_read_all_collects_every_param_with_types(
    flavour: Flavour, encoding: Encoding
) -> None:
    peer = ParamPeer(flavour)
    r = ParamReadAll(VEHICLE, encoding=encoding)
    run(r, peer)
    res = r.result
    assert res.ok and res.count == len(peer.defs) and res.missing == () and res.attempts == 1
    for d in peer.defs:
        got = res.params[d.name].value
        assert values_equal(got, d.default, int(d.type))
        assert isinstance(got, float if d.type is ParamType.REAL32 else int)


def test_param_read_all_rerequests_missing_indices_one_by_one() -> None:
    peer = ParamPeer(PX4)
    lost = {3, 7, 20}

    def reply(msg: mav.MAVLink_message, now_s: float) -> list[mav.MAVLink_message]:
        out = peer.on_message(msg, now_s)
        if msg.get_type() == "PARAM_REQUEST_LIST":
            return [m for m in out if m.param_index not in lost]
        return out

    scripted = Scripted(reply)
    r = ParamReadAll(VEHICLE, encoding="bytewise")
    run(r, scripted)
    assert r.result.ok and len(r.result.params) == len(peer.defs)
    rereads = [m for m in scripted.received if m.get_type() == "PARAM_REQUEST_READ"]
    assert [(m.param_id, m.param_index) for m in rereads] == [("", 3), ("", 7), ("", 20)]


def test_param_read_all_steps_and_gap_retries() -> None:
    r = ParamReadAll(VEHICLE, encoding="c_cast", max_retries=1)
    r.start(T0)
    r.on_message(value_msg("A", 1.0, index=0, count=2), T0 + 0.1)
    assert r.step is Step.AWAIT_LIST and r.deadline_s == T0 + 0.1 + 2.0
    (req,) = r.on_timer(T0 + 2.1)
    assert r.step is Step.FILL_GAPS and req.param_index == 1 and param_name(req.param_id) == ""
    (again,) = r.on_timer(T0 + 3.1)
    assert again.param_index == 1
    assert r.on_timer(T0 + 4.1) == []
    res = r.result
    assert res.status is ParamStatus.TIMEOUT and res.missing == (1,) and "A" in res.params
    with pytest.raises(ParamError, match="1 of 2 missing"):
        res.raise_for_status()


def test_param_read_all_ignores_unsolicited_and_inconsistent_values() -> None:
    r = ParamReadAll(VEHICLE, encoding="c_cast")
    r.start(T0)
    r.on_message(value_msg("X", 1.0, index=INDEX_NONE, count=2), T0)
    r.on_message(value_msg("A", 1.0, index=0, count=2), T0)
    r.on_message(value_msg("B", 1.0, index=1, count=3), T0)  # another table size
    assert r.ignored == 2 and not r.done
    r.on_message(value_msg("B", 2.0, index=1, count=2), T0)
    assert r.result.ok and r.result.values() == {"A": 1, "B": 2}


def test_param_read_all_resends_list_when_nothing_arrives() -> None:
    r = ParamReadAll(VEHICLE, encoding="c_cast", max_retries=2)
    r.start(T0)
    assert [m.get_type() for m in r.on_timer(T0 + 2.0)] == ["PARAM_REQUEST_LIST"]
    r.on_timer(T0 + 4.0)
    r.on_timer(T0 + 6.0)
    res = r.result
    assert res.status is ParamStatus.TIMEOUT and res.count is None and res.attempts == 3
    with pytest.raises(ParamError, match="no PARAM_VALUE"):
        res.raise_for_status()


def test_param_read_all_empty_table_is_not_confused_with_silence() -> None:
    r = ParamReadAll(VEHICLE, encoding="c_cast")
    r.start(T0)
    r.on_message(value_msg("A", 1.0, index=0, count=1), T0)
    assert r.result.ok and r.result.count == 1


@pytest.mark.parametrize("seed", range(3))
def test_param_read_all_through_a_20_percent_lossy_link(seed: int) -> None:
    peer = ParamPeer(ARDUCOPTER)
    link = LossyLink(seed=seed, loss_up=0.2, loss_down=0.2, reorder=0.2)
    r = ParamReadAll(VEHICLE, encoding="c_cast")
    run(r, peer, link)
    assert r.result.ok and len(r.result.params) == len(peer.defs)
    assert r.result.values()["RTL_ALT"] == 1500
    assert link.stats.dropped_down > 0


def test_param_read_all_with_a_lost_list_request() -> None:
    link = LossyLink(drop_next={(UP, "PARAM_REQUEST_LIST"): 1})
    r = ParamReadAll(VEHICLE, encoding="bytewise")
    run(r, ParamPeer(PX4), link)
    assert r.result.ok and r.result.attempts == 2


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0.0, 0.7),
    dup=st.floats(0.0, 0.3),
    reorder=st.floats(0.0, 0.5),
    value=st.integers(-(2**22), 2**22),
)
def test_random_loss_never_gives_a_wrong_param_result(
    seed: int, loss: float, dup: float, reorder: float, value: int
) -> None:
    peer = ParamPeer(PX4)
    link = LossyLink(seed, loss, loss, dup, reorder)
    s = ParamSet(VEHICLE, "RTL_CONE_ANG", value, INT32, encoding="bytewise")
    run(s, peer, link)
    if s.result.ok:
        assert peer.values["RTL_CONE_ANG"] == value and s.result.value == value
    else:
        assert s.result.status is ParamStatus.TIMEOUT
    r = ParamReadAll(VEHICLE, encoding="bytewise", max_retries=2)
    run(r, peer, link)
    if r.result.ok:
        assert r.result.values()["RTL_CONE_ANG"] == peer.values["RTL_CONE_ANG"]
        assert len(r.result.params) == len(peer.defs)
    else:
        assert r.result.status is ParamStatus.TIMEOUT
