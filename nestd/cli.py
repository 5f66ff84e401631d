"""The `nestd` command line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

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
        "demo", help="run a broker, a simulated fleet and the daemon, and send it orders"
    )
    demo.add_argument("--vehicles", type=int, default=2, help="simulated drones")
    demo.add_argument("--speed", type=float, default=10.0, help="simulation speed-up factor")
    demo.add_argument("--timeout", type=float, default=300.0, help="give up after N seconds")
    run = sub.add_parser("run", help="run the daemon (the systemd service)")
    run.add_argument("--config", type=Path, required=True, help="the daemon's TOML file")
    check = sub.add_parser("check-config", help="validate a config file; exit 1 if it is bad")
    check.add_argument("config", type=Path)
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
        if not 1 <= args.vehicles <= 20 or not 0 < args.speed <= 30:
            print("nestd demo: --vehicles must be 1-20 and --speed in (0, 30]", file=sys.stderr)
            return 2
        from nestd.demo import run_demo

        try:
            return asyncio.run(run_demo(args.vehicles, args.speed, args.timeout))
        except KeyboardInterrupt:
            return 130
        except RuntimeError as exc:
            print(f"nestd demo: {exc}", file=sys.stderr)
            return 1
    if args.command in ("run", "check-config"):
        from nestd.airspace import AirspaceError
        from nestd.config import ConfigError, load_config
        from nestd.jobs.journal import JournalError
        from nestd.mavlink.errors import MavlinkError

        try:
            config = load_config(args.config)
            if args.command == "check-config":
                from nestd.airspace import load_airspace
                from nestd.mavlink.profiles import load_profiles

                load_profiles(config.mavlink.profiles_dir)
                what = f"{len(config.mavlink.endpoints)} MAVLink endpoints"
                if config.airspace is not None:
                    a = load_airspace(config.airspace.file)
                    what += f", airspace {a.store.id} with {len(a.zones)} keep-outs"
                else:
                    what += ", no airspace: jobs off"
                print(f"{args.config}: OK (store {config.store_id}, {what})")
                return 0
            return _run(_run_daemon(config))
        except (ConfigError, MavlinkError, AirspaceError, JournalError, OSError) as exc:
            print(f"nestd: {exc}", file=sys.stderr)
            return 1
    if args.command == "sim":
        from nestsim.cli import main as nestsim_main

        rc: int = nestsim_main(["run", *args.args])
        return rc
    parser.error(f"unknown command {args.command}")
    return 2


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run the daemon on uvloop when it is installed (it is a dependency; plain asyncio
    loses datagrams at fleet rates, see bench/bench_link.py)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def _run_daemon(config: object) -> int:
    from nestd.config import DaemonConfig
    from nestd.daemon import build_daemon
    from nestd.log import setup_logging

    assert isinstance(config, DaemonConfig)
    setup_logging()
    daemon = build_daemon(config)
    # The airspace and the profiles are built once and live for ever: move them out of the
    # collector's way so full collections don't walk them (shorter pauses on a busy link).
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    await daemon.run()
    return 0
