"""Fleet link throughput and mission upload time.

Part 1: a sender process (pinned to the other core) plays N vehicles, each sending 8
telemetry messages at 10 Hz on one shared UDP port; this process runs the FleetLink (pinned
to one core), which decodes, routes and updates every vehicle's state. Reports messages/s
dispatched, loss, and this process's CPU share.

Part 2: upload + read-back of a 100-item mission to a nestsim vehicle on loopback, clean
and with 10% loss each way.

    .venv/bin/python bench/bench_link.py [--sizes 1,10,100,250,300] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import time
from typing import Any

from nestsim.fleet import Fleet, FleetConfig
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.config import EndpointConfig, LinkConfig
from nestd.mavlink.link import FleetLink
from nestd.mavlink.protocols.mission import MissionItem

RATE_HZ = 10.0


def _sender(port: int, n: int, seconds: float, ready: Any, sent: Any) -> None:
    """Another process: n vehicles x 8 messages at 10 Hz, paced in 10 ms slices."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    # System ids are 8 bit: past 200 vehicles, another source socket starts again at id 1,
    # and the link tells them apart by address.
    socks = []
    for _ in range((n + 199) // 200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        socks.append(s)
    encs = [mav.MAVLink(None, i % 200 + 1, 1) for i in range(n)]

    def msgs(t: float) -> list[Any]:
        boot = int(t * 1000) & 0xFFFFFFFF
        return [
            mav.MAVLink_heartbeat_message(2, 12, 129, 4 << 16 | 3 << 24, 4, 3),
            mav.MAVLink_global_position_int_message(boot, 331507000, -968236000, 240000,
                                                    40000, 100, 200, 0, 9000),
            mav.MAVLink_attitude_message(boot, 0.01, 0.02, 1.5, 0, 0, 0),
            mav.MAVLink_sys_status_message(0, 0, 0, 250, 24000, 1000, 80, 0, 0, 0, 0, 0, 0),
            mav.MAVLink_battery_status_message(0, 0, 1, 2500, [4000] * 6 + [65535] * 4, 1000,
                                               1000, 100, 80, 600, 1, [0] * 4, 0, 0),
            mav.MAVLink_gps_raw_int_message(boot * 1000, 3, 331507000, -968236000, 240000, 70,
                                            110, 500, 9000, 14),
            mav.MAVLink_vfr_hud_message(5.0, 5.0, 90, 50, 240.0, 0.0),
            mav.MAVLink_extended_sys_state_message(0, 2),
        ]

    ready.set()
    count = 0
    slices = int(1.0 / RATE_HZ / 0.01)  # vehicles spread over the 100 ms period
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < seconds:
        now = time.monotonic()
        group = range(k % slices, n, slices)
        batch = msgs(now - t0)
        for i in group:
            for m in batch:
                socks[i // 200].sendto(m.pack(encs[i]), ("127.0.0.1", port))
                count += 1
        k += 1
        nxt = t0 + k * 0.01
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    sent.value = count


async def throughput(n: int, seconds: float) -> dict[str, float]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = LinkConfig(endpoints=[EndpointConfig(
        name="radio", kind="udp_listen", port=port,
        identify_by="address" if n > 200 else "sysid")], setup_retry_s=3600)
    link = FleetLink(cfg)
    ctx = mp.get_context("spawn")
    ready, sent = ctx.Event(), ctx.Value("q", 0)
    async with link:
        proc = ctx.Process(target=_sender, args=(port, n, seconds + 2.0, ready, sent))
        proc.start()
        await asyncio.to_thread(ready.wait, 30)
        await asyncio.sleep(2.0)  # discovery and warm-up
        m0, c0, t0 = link.counters["messages"], time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        m1, c1, t1 = link.counters["messages"], time.process_time(), time.monotonic()
        await asyncio.to_thread(proc.join, 60)
        await asyncio.sleep(0.5)  # drain what is still queued in the socket buffer
    total_expected = sent.value
    lost = max(total_expected - link.counters["messages"], 0)
    return {
        "vehicles": n,
        "rate": (m1 - m0) / (t1 - t0),
        "cpu": (c1 - c0) / (t1 - t0),
        "loss": lost / total_expected if total_expected else 0.0,
        "discovered": len(link.vehicles),
    }


def _items(n: int, lat: float, lon: float) -> list[MissionItem]:
    out = [MissionItem(seq=0, frame=6, command=22, current=1, z=30.0)]
    for k in range(1, n):
        out.append(MissionItem(seq=k, frame=6, command=16, param2=2.0,
                               x=round((lat + 0.0001 * k) * 1e7), y=round(lon * 1e7), z=30.0))
    return out


async def upload_time(loss: float, repeats: int) -> list[float]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fleet_cfg = FleetConfig(vehicles=1, api_remote_ports=[port], api_local_base=0,
                            gcs_link=False, ekf_ready_s=0.0)
    link = FleetLink(LinkConfig(endpoints=[
        EndpointConfig(name="api", kind="udp_listen", port=port)]))
    times: list[float] = []
    async with link, Fleet(fleet_cfg) as fleet:
        await link.wait_for_vehicles({1}, timeout_s=20)
        v = link.vehicles[1]
        lat, lon, _ = fleet.home
        fleet.set_loss(0, loss)
        for _ in range(repeats):
            t0 = time.monotonic()
            await v.upload_mission(_items(100, lat, lon))
            times.append(time.monotonic() - t0)
    return times


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1,10,100,250,300")
    ap.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--uploads", type=int, default=5)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print(f"fleet link benchmark: {os.cpu_count()} cores; link pinned to core 0, sender to "
          f"core 1; each vehicle sends 8 messages at {RATE_HZ:g} Hz")
    print(f"{'vehicles':>8} {'offered/s':>10} {'dispatched/s':>12} {'loss':>7} {'link CPU':>9}")
    for n in (int(x) for x in args.sizes.split(",")):
        r = await throughput(n, args.seconds)
        print(f"{n:>8} {n * 8 * RATE_HZ:>10.0f} {r['rate']:>12.0f} {r['loss']:>7.2%} "
              f"{r['cpu']:>8.0%}", flush=True)
    print()
    print("100-item mission upload + read-back to nestsim (loopback), seconds")
    print(f"{'loss each way':>13} {'median':>7} {'max':>7}")
    for loss in (0.0, 0.10):
        t = await upload_time(loss, args.uploads)
        print(f"{loss:>13.0%} {statistics.median(t):>7.2f} {max(t):>7.2f}", flush=True)


if __name__ == "__main__":
    import sys

    loops = sys.argv[sys.argv.index("--loop") + 1] if "--loop" in sys.argv else "both"
    if loops in ("asyncio", "both"):
        print("== event loop: asyncio")
        asyncio.run(main())
    if loops in ("uvloop", "both"):
        import uvloop

        print("\n== event loop: uvloop")
        uvloop.run(main())
