"""Airspace benchmark: route planning, mission validation and breach prediction on 1,000 zones.

Prints a table against the targets of issue 4. Not a test; run with
`.venv/bin/python bench/bench_airspace.py [--quick]`.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import shapely

from nestd.airspace import (
    Airspace,
    BreachPredictor,
    Route,
    RouterConfig,
    Waypoint,
    plan_route,
    validate_mission,
)
from nestd.airspace.testing import random_field, synthetic_airspace

N_ZONES = 1000


def pct(samples_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_s) * 1000.0, q))


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def random_goal(a: Airspace, rng: np.random.Generator, radius_m: float) -> tuple[float, float]:
    rho = radius_m * np.sqrt(rng.uniform())
    th = rng.uniform(0, 2 * np.pi)
    return rho * np.cos(th), rho * np.sin(th)


def bench_field(
    label: str, extent_m: float, n_plans: int, rows: list[tuple[str, str, str]]
) -> None:
    build_s = []
    a: Airspace | None = None
    for seed in range(3):
        fld = random_field(N_ZONES, seed=seed, extent_m=extent_m)
        build_s.append(timed(lambda f=fld: synthetic_airspace(f, keep_in_radius_m=6000)))
    a = synthetic_airspace(random_field(N_ZONES, seed=1, extent_m=extent_m), keep_in_radius_m=6000)
    # As the daemon does after loading: the airspace's many long-lived
    # objects are left out of every later (full) garbage collection.
    gc.collect()
    gc.freeze()
    n_vertices = int(sum(len(z.geometry.exterior.coords) - 1 for z in a.zones))
    rows.append(
        (
            f"[{label}] load {N_ZONES} zones ({n_vertices} vertices), index",
            f"{pct(build_s, 50):.0f} ms",
            "",
        )
    )

    rng = np.random.default_rng(7)
    cfg = RouterConfig()
    first = timed(lambda: plan_route(a, a.nest.position, a.to_wgs84(2500, 1500), 0.0, cfg))
    rows.append((f"[{label}] first plan (builds obstacle cache)", f"{first * 1000:.0f} ms", ""))
    # Two batches of fresh random goals: the first starts with an empty edge
    # cache, the second runs after it (as a daemon does all day long).
    for batch in ("first", "next"):
        times, outcomes = [], {"route": 0, "no route": 0}
        corners = []
        for _ in range(n_plans):
            x, y = random_goal(a, rng, 5800)
            goal = a.to_wgs84(x, y)
            t = time.perf_counter()
            r = plan_route(a, a.nest.position, goal, 0.0, cfg)
            times.append(time.perf_counter() - t)
            if isinstance(r, Route):
                outcomes["route"] += 1
                corners.append(len(r.points))
            else:
                outcomes["no route"] += 1
        rows.append(
            (
                f"[{label}] plan nest->random point, {batch} {n_plans}, p50 / p99 "
                f"({outcomes['route']} routes, median {int(np.median(corners))} points)",
                f"{pct(times, 50):.1f} / {pct(times, 99):.1f} ms",
                "p99 < 50 ms " + ("ok" if pct(times, 99) < 50 else "MISSED"),
            )
        )

    # 100-waypoint missions: random legs (many violations) and a legal one.
    missions = []
    for _ in range(50):
        pts = [random_goal(a, rng, 5800) for _ in range(100)]
        lon, lat = a.frame.to_wgs84([p[0] for p in pts], [p[1] for p in pts])
        missions.append(
            [Waypoint(float(la), float(lo), 40.0) for la, lo in zip(lat, lon, strict=True)]
        )
    vtimes, nviol = [], []
    for m in missions:
        t = time.perf_counter()
        vs = validate_mission(a, m, 0.0)
        vtimes.append(time.perf_counter() - t)
        nviol.append(len(vs))
    rows.append(
        (
            f"[{label}] validate 100-waypoint random mission, p50 / p99 "
            f"(median {int(np.median(nviol))} violations)",
            f"{pct(vtimes, 50):.2f} / {pct(vtimes, 99):.2f} ms",
            "< 5 ms " + ("ok" if pct(vtimes, 99) < 5 else "MISSED"),
        )
    )
    # The same missions, reading every violation (messages and positions
    # are made on first access): what a caller listing them all pays.
    rtimes = []
    for m in missions:
        t = time.perf_counter()
        for v in validate_mission(a, m, 0.0):
            _ = v.message, v.where
        rtimes.append(time.perf_counter() - t)
    rows.append(
        (
            f"[{label}] same, reading every violation's message and where, p50 / p99",
            f"{pct(rtimes, 50):.2f} / {pct(rtimes, 99):.2f} ms",
            "",
        )
    )
    legal = None
    for _ in range(50):
        x, y = random_goal(a, rng, 5000)
        r = plan_route(a, a.nest.position, a.to_wgs84(x, y), 0.0, cfg)
        if isinstance(r, Route) and len(r.points) >= 4:
            legal = r
            break
    if legal is not None:
        line = shapely.LineString(legal.xy_m)
        d = np.linspace(0, line.length, 100)
        xy = shapely.get_coordinates(shapely.line_interpolate_point(line, d))
        lon, lat = a.frame.to_wgs84(xy[:, 0], xy[:, 1])
        m = [
            Waypoint(float(la), float(lo), legal.cruise_alt_agl_m)
            for la, lo in zip(lat, lon, strict=True)
        ]
        assert validate_mission(a, m, 0.0) == [], "planned route must validate"
        lt = [timed(lambda: validate_mission(a, m, 0.0)) for _ in range(50)]
        rows.append(
            (
                f"[{label}] validate 100-waypoint legal mission (planned), p50 / p99",
                f"{pct(lt, 50):.2f} / {pct(lt, 99):.2f} ms",
                "< 5 ms " + ("ok" if pct(lt, 99) < 5 else "MISSED"),
            )
        )

    # Predicted breach: scalar and batched over a fleet.
    p = BreachPredictor(a, 0.0)
    n = 20_000
    x = rng.uniform(-5500, 5500, n)
    y = rng.uniform(-5500, 5500, n)
    lon, lat = a.frame.to_wgs84(x, y)
    h = rng.uniform(20, 110, n)
    vn, ve, vd = rng.uniform(-15, 15, n), rng.uniform(-15, 15, n), rng.uniform(-2, 2, n)
    k = 5000
    t = time.perf_counter()
    for i in range(k):
        p.check(lat[i], lon[i], h[i], vn[i], ve[i], vd[i])
    scalar = k / (time.perf_counter() - t)
    rows.append(
        (
            f"[{label}] predicted-breach checks/s, scalar (one call per vehicle)",
            f"{scalar:,.0f}",
            "",
        )
    )
    for fleet in (100, 1000, 20_000):
        reps = max(1, 20_000 // fleet)
        t = time.perf_counter()
        for r_ in range(reps):
            s = slice((r_ * fleet) % n, (r_ * fleet) % n + fleet)
            p.check_many(lat[s], lon[s], h[s], vn[s], ve[s], vd[s])
        dt = time.perf_counter() - t
        rows.append(
            (
                f"[{label}] predicted-breach checks/s, batched, fleet of {fleet} "
                f"({dt / reps * 1000:.2f} ms per tick)",
                f"{fleet * reps / dt:,.0f}",
                ">= 100,000 " + ("ok" if fleet * reps / dt >= 100_000 else "MISSED"),
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer samples")
    args = ap.parse_args()
    n_plans = 60 if args.quick else 300
    rows: list[tuple[str, str, str]] = []
    # dense: every zone inside the 6 km operating area (worst case);
    # spread: the same 1,000 zones over a 15 km radius around the store.
    bench_field("dense", 6000, n_plans, rows)
    bench_field("spread", 15000, n_plans, rows)
    w = max(len(r[0]) for r in rows)
    print(
        f"nestd airspace benchmark: {N_ZONES} keep-out polygons of 20-200 vertices, "
        f"30 m / 10 m margins, 4 cruise layers; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, shapely {shapely.__version__} "
        f"(GEOS {shapely.geos_version_string})"
    )
    tw = max(len(r[2]) for r in rows)
    print(f"| {'what':<{w}} | {'measured':>18} | {'target':<{tw}} |")
    print(f"|{'-' * (w + 2)}|{'-' * 20}|{'-' * (tw + 2)}|")
    for what, got, target in rows:
        print(f"| {what:<{w}} | {got:>18} | {target:<{tw}} |")


if __name__ == "__main__":
    main()
