"""Pre-flight checks: a ready vehicle passes all, and each fault fails exactly its own check."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest
from pymavlink.dialects.v20 import common as mav

from nestd.safety.airframe import Airframe
from nestd.safety.energy import CALM, evaluate_energy
from nestd.safety.preflight import (
    GPS_FIX_TYPE_3D,
    MAV_LANDED_STATE_ON_GROUND,
    BatteryInfo,
    CheckName,
    FlightIntent,
    GpsInfo,
    LinkInfo,
    PreflightLimits,
    VehicleSnapshot,
    run_preflight,
)
from nestd.safety.wind import WindMonitor, WindSample

from .helpers import NEST, at, straight_route

AF = Airframe()
PAD = NEST
PARAMS = {"NAV_DLL_ACT": 2.0, "COM_DL_LOSS_T": 10.0, "GF_ACTION": 3.0, "RTL_RETURN_ALT": 60.0}
HASHES = {"mission": "a1", "fence": "b2", "rally": "c3"}


def ready_vehicle() -> VehicleSnapshot:
    return VehicleSnapshot(
        armed=False,
        landed_state=MAV_LANDED_STATE_ON_GROUND,
        position=at(1.0, 1.0),
        home=at(0.5, 0.0),
        gps=GpsInfo(fix_type=3, satellites=14, hdop=0.8),
        battery=BatteryInfo(remaining_pct=96.0, voltage_v=25.1, temperature_c=24.0),
        link=LinkInfo(silent_s=0.2, loss_ratio=0.01),
        estimator_healthy=True,
        prearm_ok=True,
        params=dict(PARAMS),
        onboard_hashes=dict(HASHES),
    )


def ready_intent() -> FlightIntent:
    energy = evaluate_energy(
        AF, straight_route(2000.0), wind=CALM, payload_kg=1.5, battery_energy_wh=470.0
    )
    wind = WindMonitor().update(WindSample(0.0, 4.0, 6.0, "anemometer"))
    return FlightIntent(
        pad=PAD,
        payload_kg=1.5,
        energy=energy,
        wind=wind,
        required_params=PARAMS,
        uploaded_hashes=HASHES,
    )


def test_a_ready_vehicle_passes_every_check() -> None:
    report = run_preflight(ready_vehicle(), ready_intent(), AF)
    assert report.passed, report.failures
    assert {r.name for r in report.results} == set(CheckName)


def _vehicle(**changes: Any) -> VehicleSnapshot:
    return dataclasses.replace(ready_vehicle(), **changes)


def _intent(**changes: Any) -> FlightIntent:
    return dataclasses.replace(ready_intent(), **changes)


VEHICLE_FAULTS = [
    ("no_gps", {"gps": GpsInfo()}, CheckName.GPS, "no GPS report"),
    ("2d_fix", {"gps": GpsInfo(2, 14, 0.8)}, CheckName.GPS, "fix type 2"),
    ("few_sats", {"gps": GpsInfo(3, 6, 0.8)}, CheckName.GPS, "6 satellites"),
    ("bad_hdop", {"gps": GpsInfo(3, 14, 2.5)}, CheckName.GPS, "hdop 2.50"),
    ("ekf_fault", {"estimator_healthy": False}, CheckName.ESTIMATOR, "fault"),
    ("ekf_unknown", {"estimator_healthy": None}, CheckName.ESTIMATOR, "not reported"),
    ("low_pct", {"battery": BatteryInfo(15.0)}, CheckName.BATTERY_STATE, "floor 20%"),
    ("cold", {"battery": BatteryInfo(90.0, 25.0, -2.0)}, CheckName.BATTERY_STATE, "-2 degC"),
    ("hot", {"battery": BatteryInfo(90.0, 25.0, 61.0)}, CheckName.BATTERY_STATE, "61 degC"),
    ("armed", {"armed": True}, CheckName.DISARMED_ON_GROUND, "already armed"),
    ("in_air", {"landed_state": 2}, CheckName.DISARMED_ON_GROUND, "not on the ground"),
    ("off_pad", {"position": at(8.0, 0.0)}, CheckName.ON_PAD, "8.0 m from its pad"),
    ("no_position", {"position": None}, CheckName.ON_PAD, "no position"),
    ("no_home", {"home": None}, CheckName.HOME, "home not set"),
    ("home_far", {"home": at(0.0, 40.0)}, CheckName.HOME, "40.0 m from the pad"),
    ("prearm_fail", {"prearm_ok": False}, CheckName.ARMABLE, "pre-arm checks fail"),
    ("silent", {"link": LinkInfo(5.0, 0.0)}, CheckName.LINK, "silent for 5.0 s"),
    ("lossy", {"link": LinkInfo(0.1, 0.3)}, CheckName.LINK, "30% packet loss"),
    ("never_heard", {"link": LinkInfo()}, CheckName.LINK, "never heard"),
    (
        "param_wrong",
        {"params": {**PARAMS, "NAV_DLL_ACT": 0.0}},
        CheckName.FAILSAFE_PARAMS,
        "NAV_DLL_ACT=0, need 2",
    ),
    (
        "param_missing",
        {"params": {k: v for k, v in PARAMS.items() if k != "GF_ACTION"}},
        CheckName.FAILSAFE_PARAMS,
        "GF_ACTION not read",
    ),
    (
        "fence_differs",
        {"onboard_hashes": {**HASHES, "fence": "zz"}},
        CheckName.UPLOADS_MATCH,
        "fence",
    ),
]


@pytest.mark.parametrize(
    ("changes", "check", "reason"),
    [f[1:] for f in VEHICLE_FAULTS],
    ids=[f[0] for f in VEHICLE_FAULTS],
)
def test_each_vehicle_fault_fails_only_its_check(
    changes: dict[str, Any], check: CheckName, reason: str
) -> None:
    report = run_preflight(_vehicle(**changes), ready_intent(), AF)
    assert [r.name for r in report.failures] == [check]
    assert reason in report.result(check).reason


def test_float32_rounding_of_a_parameter_is_not_a_mismatch() -> None:
    v = _vehicle(params={**PARAMS, "RTL_RETURN_ALT": 60.000002})
    assert run_preflight(v, ready_intent(), AF).passed


def test_missing_temperature_and_landed_state_are_not_faults() -> None:
    v = _vehicle(battery=BatteryInfo(90.0), landed_state=None)
    assert run_preflight(v, ready_intent(), AF).passed


def _low_energy() -> object:
    return evaluate_energy(
        AF, straight_route(2000.0), wind=CALM, payload_kg=1.5, battery_energy_wh=150.0
    )


def _stopped_wind() -> object:
    return WindMonitor().update(WindSample(0.0, 11.0, 13.0, "anemometer"))


INTENT_FAULTS = [
    ("low_energy", {"energy": _low_energy()}, CheckName.BATTERY_ENERGY, "not_ready_until_charged"),
    ("no_energy_plan", {"energy": None}, CheckName.BATTERY_ENERGY, "no energy plan"),
    ("ground_stop", {"wind": _stopped_wind()}, CheckName.WIND, "ground_stop"),
    ("no_wind", {"wind": None}, CheckName.WIND, "no wind state"),
    ("heavy", {"payload_kg": 2.5}, CheckName.PAYLOAD, "over the 2.30 kg limit"),
    ("negative", {"payload_kg": -1.0}, CheckName.PAYLOAD, "not a mass"),
    ("zone", {"airspace_violations": ["z1: active 15:00-16:00"]}, CheckName.AIRSPACE, "z1"),
    ("no_upload", {"uploaded_hashes": {}}, CheckName.UPLOADS_MATCH, "nothing uploaded"),
]


@pytest.mark.parametrize(
    ("changes", "check", "reason"),
    [f[1:] for f in INTENT_FAULTS],
    ids=[f[0] for f in INTENT_FAULTS],
)
def test_each_intent_fault_fails_only_its_check(
    changes: dict[str, Any], check: CheckName, reason: str
) -> None:
    report = run_preflight(ready_vehicle(), _intent(**changes), AF)
    assert [r.name for r in report.failures] == [check]
    assert reason in report.result(check).reason


def test_all_failures_are_reported_at_once() -> None:
    v = _vehicle(armed=True, gps=GpsInfo(), prearm_ok=False)
    report = run_preflight(v, _intent(energy=None), AF)
    assert {r.name for r in report.failures} == {
        CheckName.DISARMED_ON_GROUND,
        CheckName.GPS,
        CheckName.ARMABLE,
        CheckName.BATTERY_ENERGY,
    }


def test_skipped_checks_are_not_run() -> None:
    report = run_preflight(
        _vehicle(estimator_healthy=None), ready_intent(), AF, skip=frozenset({CheckName.ESTIMATOR})
    )
    assert report.passed and CheckName.ESTIMATOR not in {r.name for r in report.results}


def test_limits_are_configurable() -> None:
    lim = PreflightLimits(min_satellites=16, min_battery_voltage_v=25.5)
    report = run_preflight(ready_vehicle(), ready_intent(), AF, lim)
    assert [r.name for r in report.failures] == [CheckName.GPS, CheckName.BATTERY_STATE]


def test_mavlink_constants_match_pymavlink() -> None:
    assert GPS_FIX_TYPE_3D == mav.GPS_FIX_TYPE_3D_FIX
    assert MAV_LANDED_STATE_ON_GROUND == mav.MAV_LANDED_STATE_ON_GROUND


def test_safety_domain_imports_no_io_or_async() -> None:
    code = (
        "import sys, nestd.safety.airframe, nestd.safety.energy, nestd.safety.wind, "
        "nestd.safety.preflight; "
        "print(sorted(m for m in ('asyncio', 'pymavlink', 'aiomqtt', 'sqlite3', 'nestsim') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
