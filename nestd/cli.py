"""The `nestd` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys

from nestd import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nestd",
        description="nestd runs a store's drone-delivery nest: it takes delivery jobs over MQTT, "
        "plans and flies them over MAVLink, and watches every flight.",
    )
    p.add_argument("--version", action="version", version=f"nestd {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo", help="fly a simulated fleet through one delivery each and show live state"
    )
    demo.add_argument("--vehicles", type=int, default=3, help="simulated drones (1-3 addresses)")
    demo.add_argument("--speed", type=float, default=8.0, help="simulation speed-up factor")
    demo.add_argument("--timeout", type=float, default=240.0, help="give up after N seconds")
    sim = sub.add_parser(
        "sim", help="run a simulated fleet (same as `nestsim run`)", add_help=False
    )
    sim.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        if not 1 <= args.vehicles <= 50 or not 0 < args.speed <= 50:
            print("nestd demo: --vehicles must be 1-50 and --speed in (0, 50]", file=sys.stderr)
            return 2
        from nestd.demo import run_demo

        try:
            return asyncio.run(run_demo(args.vehicles, args.speed, args.timeout))
        except KeyboardInterrupt:
            return 130
    if args.command == "sim":
        from nestsim.cli import main as nestsim_main

        rc: int = nestsim_main(["run", *args.args])
        return rc
    parser.error(f"unknown command {args.command}")
    return 2
