"""How many vehicles one nestsim process sustains at PX4's default telemetry rates.

Starts `nestsim run` in a subprocess pinned to one core for each fleet size, counts every
datagram it sends (API links and the shared GCS port) from this process on the other core,
and reads the simulator's CPU time from /proc. Prints a table; not a pass/fail test.

    .venv/bin/python bench/bench_nestsim.py [--sizes 10,50,100,150,200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nestsim.link import PX4_API_RATES, PX4_GCS_RATES
from pymavlink.dialects.v20 import ardupilotmega as mav

# Streams that only flow once a mission item is reached or the winch moves.
_EVENT_ONLY = {mav.MAVLINK_MSG_ID_MISSION_ITEM_REACHED, mav.MAVLINK_MSG_ID_WINCH_STATUS}
PER_VEHICLE_HZ = sum(hz for m, hz in PX4_API_RATES.items() if m not in _EVENT_ONLY) + sum(
    hz for m, hz in PX4_GCS_RATES.items() if m not in _EVENT_ONLY
)


class Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.n = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.n += 1


def _free_block(n: int) -> int:
    """A base port with n consecutive free UDP ports."""
    for base in range(30000, 60000 - n, 97):
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def measure(n: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    base = _free_block(n + 1)
    gcs_port = base + n
    counters: list[Counter] = []
    transports = []
    for port in range(base, base + n + 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("127.0.0.1", port))
        t, c = await loop.create_datagram_endpoint(Counter, sock=sock)
        counters.append(c)
        transports.append(t)
    cmd = [sys.executable, "-m", "nestsim.cli", "run", "-n", str(n), "--any-local-port",
           "--api-port-base", str(base), "--gcs-port", str(gcs_port), "--control-port", "0",
           "--print-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    try:
        await asyncio.sleep(3.0)  # start-up and first stream phases
        c0 = sum(c.n for c in counters)
        cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
        await asyncio.sleep(seconds)
        c1 = sum(c.n for c in counters)
        cpu1, t1 = _cpu_s(proc.pid), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(10)
        for t in transports:
            t.close()
    rate = (c1 - c0) / (t1 - t0)
    return {
        "vehicles": n,
        "expected": n * PER_VEHICLE_HZ,
        "received": rate,
        "ratio": rate / (n * PER_VEHICLE_HZ),
        "cpu": (cpu1 - cpu0) / (t1 - t0),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,50,100,150,200")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per size; the median is shown")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {os.cpu_count() - 1} if (os.cpu_count() or 1) > 1 else {0})
    print(f"nestsim fleet benchmark: {os.cpu_count()} cores, simulator pinned to core 0, "
          f"{PER_VEHICLE_HZ:g} msgs/s per vehicle at default rates (API + GCS link)")
    print(f"{'vehicles':>8} {'expected/s':>11} {'received/s':>11} {'delivered':>9} "
          f"{'sim CPU':>8}  sustained")
    for n in (int(x) for x in args.sizes.split(",")):
        runs = [await measure(n, args.seconds) for _ in range(args.repeats)]
        r = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        ok = r["ratio"] >= 0.95 and r["cpu"] < 0.95
        print(f"{n:>8} {r['expected']:>11.0f} {r['received']:>11.0f} {r['ratio']:>8.1%} "
              f"{r['cpu']:>7.0%}  {'yes' if ok else 'no'}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
