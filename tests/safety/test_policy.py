"""In-flight policy with a stepped clock: every flag's action, escalation, hysteresis, latching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nestd.safety.errors import SafetyInputError
from nestd.safety.policy import (
    DEFAULT_RULES,
    FLAG_NAMES,
    Action,
    Policy,
    Rule,
    SafetyFlags,
)

CLEAR = SafetyFlags()


def flag(*names: str) -> SafetyFlags:
    return SafetyFlags(**dict.fromkeys(names, True))


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("wind_over_limit", Action.WARN),
        ("link_degraded", Action.WARN),
        ("geofence_breach_predicted", Action.HOLD),
        ("stalled", Action.HOLD),
        ("off_corridor", Action.HOLD),
        ("energy_to_finish_below_reserve", Action.RETURN),
        ("gps_degraded", Action.RETURN),
        ("link_lost", Action.RETURN),
        ("geofence_breached", Action.RETURN),
        ("energy_to_home_below_reserve", Action.LAND_AT_SAFE_SITE),
        ("battery_anomaly", Action.LAND_AT_SAFE_SITE),
        ("gps_lost", Action.LAND_NOW),
    ],
)
def test_each_flag_alone_maps_to_its_action(name: str, action: Action) -> None:
    d = Policy().update(0.0, flag(name))
    assert (d.action, d.rule, d.flags) == (action, name, (name,))


def test_every_flag_has_a_rule() -> None:
    assert {r.flag for r in DEFAULT_RULES} == set(FLAG_NAMES)


def test_all_clear_continues() -> None:
    d = Policy().update(0.0, CLEAR)
    assert d.action is Action.CONTINUE and d.rule == ""


def test_most_severe_of_several_flags_wins() -> None:
    d = Policy().update(0.0, flag("wind_over_limit", "stalled", "energy_to_home_below_reserve"))
    assert d.action is Action.LAND_AT_SAFE_SITE and d.rule == "energy_to_home_below_reserve"


def test_stalled_holds_then_returns_after_30_s() -> None:
    p, now = Policy(), 100.0
    assert p.update(now, flag("stalled")).action is Action.HOLD
    now += 29.0
    assert p.update(now, flag("stalled")).action is Action.HOLD
    now += 1.0
    d = p.update(now, flag("stalled"))
    assert d.action is Action.RETURN and "30 s" in d.reason


def test_predicted_breach_holds_then_returns_after_10_s() -> None:
    p = Policy()
    p.update(0.0, flag("geofence_breach_predicted"))
    assert p.update(6.0, flag("geofence_breach_predicted")).action is Action.HOLD
    assert p.update(10.0, flag("geofence_breach_predicted")).action is Action.RETURN


def test_a_flickering_flag_keeps_its_escalation_clock() -> None:
    # Up, down for 2 s (under the 5 s clear time), up again: still the same stall.
    p = Policy()
    p.update(0.0, flag("stalled"))
    p.update(20.0, CLEAR)
    assert p.update(22.0, CLEAR).action is Action.HOLD
    assert p.update(30.0, flag("stalled")).action is Action.RETURN


def test_hold_releases_after_the_flag_stays_clear() -> None:
    p = Policy()
    p.update(0.0, flag("off_corridor"))
    p.update(1.0, CLEAR)
    assert p.update(5.9, CLEAR).action is Action.HOLD
    assert p.update(6.0, CLEAR).action is Action.CONTINUE


def test_return_latches_after_its_flag_clears() -> None:
    p = Policy()
    p.update(0.0, flag("energy_to_finish_below_reserve"))
    d = p.update(60.0, CLEAR)
    assert d.action is Action.RETURN and d.reason.startswith("latched")
    assert p.update(61.0, flag("energy_to_home_below_reserve")).action is Action.LAND_AT_SAFE_SITE


def test_follows_the_autopilots_own_rtl_on_link_loss() -> None:
    d = Policy().update(0.0, flag("link_lost"), autopilot_action=Action.RETURN)
    assert d.action is Action.RETURN and d.follow_autopilot
    assert "own failsafe" in d.reason


def test_follows_a_more_severe_autopilot_failsafe_when_we_see_nothing() -> None:
    d = Policy().update(0.0, CLEAR, autopilot_action=Action.LAND_NOW)
    assert d.action is Action.LAND_NOW and d.follow_autopilot


def test_overrides_an_autopilot_rtl_when_home_is_out_of_reach() -> None:
    d = Policy().update(0.0, flag("energy_to_home_below_reserve"), autopilot_action=Action.RETURN)
    assert d.action is Action.LAND_AT_SAFE_SITE and not d.follow_autopilot


@pytest.mark.parametrize(
    "rule",
    [
        Rule("no_such_flag", Action.HOLD, "x"),
        Rule("stalled", Action.HOLD, "x", escalate_after_s=5.0),
    ],
)
def test_bad_rules_are_rejected(rule: Rule) -> None:
    with pytest.raises(SafetyInputError):
        Policy([rule])


@given(
    steps=st.lists(
        st.tuples(st.floats(0.1, 20.0), st.lists(st.sampled_from(FLAG_NAMES), max_size=4)),
        max_size=60,
    )
)
def test_once_returning_never_decides_less(steps: list[tuple[float, list[str]]]) -> None:
    p, now, floor = Policy(), 0.0, Action.CONTINUE
    for dt, names in steps:
        now += dt
        d = p.update(now, flag(*names))
        assert d.action >= floor
        if d.action >= Action.RETURN:
            floor = d.action
