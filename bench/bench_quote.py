"""Quote benchmark: drone-or-courier answers, 1,000 keep-outs, 20 drones; a dispatch round.

The retailer waits for a quote (target: 50 ms p99). Cold: every destination new to the route
cache (one route search each); warm: the same destinations again. Prints a table; not a test.
Run with `.venv/bin/python bench/bench_quote.py [--quick]`.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from nestd.airspace import Airspace, LatLon, plan_route
from nestd.airspace.testing import random_field, synthetic_airspace
from nestd.jobs.dispatch import DispatchSettings, QueuedJob, plan_dispatch
from nestd.jobs.models import Job
from nestd.jobs.quote import DroneView, FleetView, Quoter, QuoteResult
from nestd.safety import Airframe, WindVector

N_ZONES = 1000
N_DRONES = 20
N_QUEUED = 50
NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC).timestamp()
TARGET_MS = 50.0


def pct(samples_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_s) * 1000.0, q))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def random_point(a: Airspace, rng: np.random.Generator, radius_m: float) -> LatLon:
    rho = radius_m * np.sqrt(rng.uniform())
    th = rng.uniform(0, 2 * np.pi)
    return a.to_wgs84(float(rho * np.cos(th)), float(rho * np.sin(th)))


def jobs(a: Airspace, rng: np.random.Generator, n: int, prefix: str) -> list[Job]:
    out = []
    for i in range(n):
        p = random_point(a, rng, 5800.0)
        out.append(
            Job.model_validate(
                {
                    "order_id": f"{prefix}-{i}",
                    "store_id": "bench",
                    "destination": {"lat_deg": p.lat_deg, "lon_deg": p.lon_deg},
                    "parcel": {"mass_kg": float(rng.uniform(0.3, 2.3))},
                    "promised_by": datetime.fromtimestamp(
                        NOW + float(rng.uniform(1800.0, 7200.0)), UTC
                    ),
                    "priority": int(rng.integers(0, 10)),
                }
            )
        )
    return out


def fleet(a: Airspace, rng: np.random.Generator) -> FleetView:
    """20 drones: most on their pads with varied batteries, a few flying, one unhealthy."""
    af = Airframe()
    drones = []
    for k in range(1, N_DRONES + 1):
        flying = k % 4 == 0
        drones.append(
            DroneView(
                key=k,
                pad_id=f"pad-{k}",
                pad=a.nest.position,
                airframe=af,
                battery_wh=float(rng.uniform(120.0, af.battery_capacity_wh)),
                available_at_s=NOW + (float(rng.uniform(60.0, 900.0)) if flying else 0.0),
                battery_wh_at_available=float(rng.uniform(100.0, 300.0)) if flying else None,
                healthy=k != 7,
            )
        )
    return FleetView(
        NOW, tuple(drones), wind=WindVector.from_direction(250.0, 5.0), next_launch_slot_s=NOW
    )


def outcome(r: QuoteResult) -> str:
    return "eligible" if r.eligible else r.reasons[0].code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="60 destinations instead of 300")
    args = ap.parse_args()
    n_dest = 60 if args.quick else 300
    rounds = 3 if args.quick else 7

    build_s, a = timed(
        lambda: synthetic_airspace(random_field(N_ZONES, seed=1), keep_in_radius_m=6000.0)
    )
    assert isinstance(a, Airspace)
    # As the daemon does after loading: long-lived objects left out of full collections.
    gc.collect()
    gc.freeze()
    first_s, _ = timed(lambda: plan_route(a, a.nest.position, a.to_wgs84(2500, 1500), NOW))

    rng = np.random.default_rng(7)
    f = fleet(a, rng)
    todo = jobs(a, rng, n_dest, "q")
    quoter = Quoter(a)
    cold: list[float] = []
    warm: list[float] = []
    outcomes: Counter[str] = Counter()
    for j in todo:
        dt, r = timed(lambda j=j: quoter.quote(j, f))
        cold.append(dt)
        assert isinstance(r, QuoteResult)
        outcomes[outcome(r)] += 1
    for j in todo:
        warm.append(timed(lambda j=j: quoter.quote(j, f))[0])
    info = quoter.cache_info()

    # One dispatch round over 50 queued jobs: cold route cache, then warm.
    queue = [QueuedJob(j, NOW - 10.0 * i) for i, j in enumerate(jobs(a, rng, N_QUEUED, "d"))]
    settings = DispatchSettings(assign_ahead_s=300.0)
    dispatch_cold: list[float] = []
    dispatch_warm: list[float] = []
    split = (0, 0, 0)
    for _ in range(rounds):
        dq = Quoter(a)
        dt, res = timed(lambda dq=dq: plan_dispatch(queue, f, dq, settings))
        dispatch_cold.append(dt)
        dispatch_warm.append(timed(lambda dq=dq: plan_dispatch(queue, f, dq, settings))[0])
        assert isinstance(res, tuple)
        split = (len(res[0]), len(res[1]), len(res[2]))

    cpus = os.cpu_count() or 1
    print(f"nestd quote benchmark - {platform.python_implementation()} {platform.python_version()}")
    print(
        f"cpus: {cpus}  zones: {N_ZONES}  drones: {N_DRONES} (5 flying, 1 unhealthy)  "
        f"destinations: {n_dest}  wind 5 m/s"
    )
    print()
    print(f"{'what':<58} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  note")
    print("-" * 100)

    def row(label: str, s: list[float], note: str = "") -> None:
        print(f"{label:<58} {pct(s, 50):8.2f} {pct(s, 99):8.2f} {max(s) * 1e3:8.2f}  {note}")

    print(f"{'build airspace (1,000 zones)':<58} {build_s * 1e3:8.0f}")
    print(f"{'first route (builds the router obstacle cache)':<58} {first_s * 1e3:8.0f}")

    def verdict(s: list[float]) -> str:
        return f"p99 < {TARGET_MS:.0f} ms " + ("ok" if pct(s, 99) < TARGET_MS else "MISSED")

    row("quote, cold route cache (one route search each)", cold, verdict(cold))
    row("quote, warm route cache", warm, verdict(warm))
    row(
        f"dispatch round, {N_QUEUED} queued jobs, cold route cache",
        dispatch_cold,
        f"{split[0]} assigned, {split[1]} declined, {split[2]} waiting",
    )
    row(f"dispatch round, {N_QUEUED} queued jobs, warm route cache", dispatch_warm)
    print()
    print(f"route cache: {info.hits} hits, {info.misses} misses, {info.size} kept")
    print("quote outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))


if __name__ == "__main__":
    main()
