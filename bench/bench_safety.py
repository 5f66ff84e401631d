"""Safety benchmark: energy go/no-go evaluations per second on a typical delivery route.

The quote path answers "can a drone fly this?" while the retailer waits, so it must be fast.
Prints a table; not a test. Run with `.venv/bin/python bench/bench_safety.py [--quick]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from nestd.airspace import DeliveryPlan, LatLon, NoRoute, load_airspace, plan_delivery
from nestd.safety.airframe import Airframe
from nestd.safety.energy import EnergyRoute, WindVector, evaluate_energy
from nestd.safety.policy import Policy, SafetyFlags
from nestd.safety.wind import WindLimits, WindMonitor, WindSample

GEOFENCE = Path(__file__).resolve().parents[1] / "geofences" / "us-tx-richardson.geojson"
GOAL = LatLon(32.9500, -96.7480)
DEPART = datetime(2026, 11, 24, 15, 0, tzinfo=ZoneInfo("America/Chicago"))


def rate(fn: Callable[[], object], min_s: float, rounds: int = 5) -> tuple[float, float]:
    """(calls per second, microseconds per call): the best of `rounds` runs of `min_s` each.

    Best, not mean, as timeit does: other processes on a shared machine only ever slow a run.
    """
    best_s = float("inf")
    for _ in range(rounds):
        n = 0
        t0 = time.perf_counter()
        while True:
            for _ in range(50):
                fn()
            n += 50
            dt = time.perf_counter() - t0
            if dt >= min_s / rounds:
                break
        best_s = min(best_s, dt / n)
    return 1.0 / best_s, best_s * 1e6


@dataclass(frozen=True)
class Setup:
    plan: DeliveryPlan
    airframe: Airframe
    sites: list[LatLon]
    route: EnergyRoute
    wind: WindVector


def setup() -> Setup:
    a = load_airspace(GEOFENCE)
    plan = plan_delivery(a, GOAL, DEPART)
    if isinstance(plan, NoRoute):
        raise SystemExit(f"no route for the benchmark delivery: {plan.message}")
    af = Airframe()
    sites = [s.position for s in a.safe_landing_sites]
    route = EnergyRoute.from_delivery_plan(plan, af.delivery.delivery_alt_agl_m, sites)
    return Setup(plan, af, sites, route, WindVector.from_direction(250.0, 7.0))


def quote_fn(su: Setup) -> Callable[[], object]:
    def quote_from_plan() -> object:
        r = EnergyRoute.from_delivery_plan(
            su.plan, su.airframe.delivery.delivery_alt_agl_m, su.sites
        )
        return evaluate_energy(su.airframe, r, wind=su.wind, payload_kg=1.8, battery_energy_wh=420)

    return quote_from_plan


def quote_rate_in_worker(min_s: float) -> float:
    return rate(quote_fn(setup()), min_s)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="0.3 s per row instead of 2 s")
    args = ap.parse_args()
    min_s = 0.3 if args.quick else 2.0

    su = setup()
    af, route, wind = su.airframe, su.route, su.wind

    def decide(with_limits: bool) -> Callable[[], object]:
        return lambda: evaluate_energy(
            af, route, wind=wind, payload_kg=1.8, battery_energy_wh=420.0, with_limits=with_limits
        )

    monitor = WindMonitor(WindLimits.for_airframe(af))
    clock = [0.0]

    def wind_sample() -> object:
        clock[0] += 1.0
        return monitor.update(WindSample(clock[0], 6.0, 8.0, "anemometer"))

    policy = Policy()
    flag_sets = [SafetyFlags(), SafetyFlags(wind_over_limit=True), SafetyFlags(stalled=True)]

    def policy_tick() -> object:
        clock[0] += 0.2
        return policy.update(clock[0], flag_sets[int(clock[0]) % 3])

    rows = [
        ("energy verdict + breakdown (route cached)", decide(False)),
        ("... + max payload and max range", decide(True)),
        ("quote: route geometry from plan + full evaluation", quote_fn(su)),
        ("wind monitor sample", wind_sample),
        ("in-flight policy decision (flags -> action)", policy_tick),
    ]
    d = evaluate_energy(af, route, wind=wind, payload_kg=1.8, battery_energy_wh=420.0)
    print(
        f"nestd safety benchmark - {platform.python_implementation()} {platform.python_version()}"
    )
    n_segments = len(route.outbound) + len(route.inbound)
    cpus = os.cpu_count() or 1
    print(
        f"cpus: {cpus}  route: {n_segments} segments, {route.length_m:.0f} m, "
        f"wind {wind.speed_mps:.0f} m/s from {wind.from_deg:.0f} deg"
    )
    print()
    print(f"{'operation':<52} {'per second':>12} {'us each':>10}")
    print("-" * 76)
    for label, fn in rows:
        per_s, us = rate(fn, min_s)
        print(f"{label:<52} {per_s:12,.0f} {us:10.1f}")
    # One process per core: what a nest could answer if quoting had the machine to itself.
    with ProcessPoolExecutor(cpus) as pool:
        total = sum(pool.map(quote_rate_in_worker, [min_s] * cpus))
    label = f"quote, {cpus} processes together"
    print(f"{label:<52} {total:12,.0f} {1e6 * cpus / total:10.1f}")
    print()
    print(d.table())


if __name__ == "__main__":
    main()
