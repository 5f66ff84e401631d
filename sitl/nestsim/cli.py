"""`nestsim`: run a simulated fleet, or send it a control request."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from nestsim.control import ControlServer, request
from nestsim.fleet import DEFAULT_HOME, Fleet, FleetConfig, FleetError


def _home(text: str) -> tuple[float, float, float]:
    try:
        lat, lon, alt = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected LAT,LON,ALT_AMSL_M, e.g. 33.15,-96.82,200"
        ) from None
    return lat, lon, alt


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nestsim", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a simulated fleet until interrupted")
    run.add_argument("-n", "--vehicles", type=int, default=3)
    run.add_argument("--autopilot", choices=["px4", "ardupilot"], default="px4")
    run.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    run.add_argument("--home", type=_home, default=DEFAULT_HOME, help="LAT,LON,ALT_AMSL_M")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument(
        "--api-port-base",
        type=int,
        default=14540,
        help="vehicle i sends its API link to this port + i",
    )
    run.add_argument(
        "--gcs-port", type=int, default=14550, help="every vehicle's GCS link goes to this port"
    )
    run.add_argument("--no-gcs-link", action="store_true")
    run.add_argument(
        "--any-local-port",
        action="store_true",
        help="bind the vehicles' own sockets to free ports instead of 14580+i/18570+i",
    )
    run.add_argument(
        "--control-port",
        type=int,
        default=14600,
        help="TCP port on 127.0.0.1 for control requests (0: any free port)",
    )
    run.add_argument(
        "--print-every",
        type=float,
        default=1.0,
        help="print the fleet's state every N seconds (0: never)",
    )
    ctl = sub.add_parser("ctl", help="send one control request to a running nestsim")
    ctl.add_argument("--port", type=int, default=14600)
    ctl.add_argument(
        "cmd",
        choices=[
            "status",
            "cut_link",
            "restore_link",
            "set_loss",
            "set_latency",
            "drop_gps",
            "restore_gps",
            "set_wind",
            "set_battery",
            "statustext",
        ],
    )
    ctl.add_argument(
        "args",
        nargs="*",
        metavar="KEY=VALUE",
        help="e.g. vehicle=0 duration_s=20 link=api loss=0.1 east_mps=5",
    )
    return p


def format_status(rows: list[dict[str, Any]]) -> str:
    head = f"{'sys':>3} {'mode':<13} {'arm':<3} {'state':<10} {'lat':>11} {'lon':>12} "
    head += f"{'alt_m':>6} {'gs_mps':>6} {'batt%':>5}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['sysid']:>3} {r['mode']:<13} {'yes' if r['armed'] else 'no':<3} "
            f"{r['landed_state']:<10} {r['lat_deg']:>11.6f} {r['lon_deg']:>12.6f} "
            f"{r['alt_rel_m']:>6.1f} {r['groundspeed_mps']:>6.1f} {r['battery_pct']:>5.1f}"
        )
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    cfg = FleetConfig(
        vehicles=args.vehicles,
        autopilot=args.autopilot,
        home=args.home,
        host=args.host,
        api_remote_base=args.api_port_base,
        api_local_base=0 if args.any_local_port else 14580,
        gcs_remote_port=args.gcs_port,
        gcs_local_base=0 if args.any_local_port else 18570,
        gcs_link=not args.no_gcs_link,
        speed=args.speed,
    )
    fleet = Fleet(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fleet:
        control = ControlServer(fleet, port=args.control_port)
        port = await control.start()
        print(
            f"nestsim: {cfg.vehicles} {cfg.autopilot} vehicles; API links to "
            f"{cfg.host}:{cfg.api_remote_base}..{cfg.api_remote_base + cfg.vehicles - 1}, "
            f"GCS link to {cfg.host}:{cfg.gcs_remote_port}; control on 127.0.0.1:{port}",
            flush=True,
        )
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.print_every or 3600)
                if args.print_every and not stop.is_set():
                    print(format_status(fleet.status()), flush=True)
        finally:
            await control.stop()
    return 0


def _parse_kv(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"nestsim ctl: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return asyncio.run(_run(args))
        payload = {"cmd": args.cmd, **_parse_kv(args.args)}
        reply = asyncio.run(request(args.port, payload))
        print(json.dumps(reply, indent=2))
        return 0 if reply.get("ok") else 1
    except FleetError as exc:
        print(f"nestsim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"nestsim: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
