"""Control API over a local TCP socket: one JSON object per line in, one JSON reply per line out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nestsim.fleet import Fleet, FleetError

MAX_LINE_BYTES = 4096


def apply(fleet: Fleet, request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one control request; bad input raises FleetError, KeyError, ValueError
    or TypeError."""
    cmd = request.get("cmd")
    i = request.get("vehicle")
    which = request.get("link", "all")
    if cmd == "status":
        return {"ok": True, "vehicles": fleet.status()}
    if cmd == "cut_link":
        fleet.cut_link(int(i), request.get("duration_s"), which)
    elif cmd == "restore_link":
        fleet.restore_link(int(i), which)
    elif cmd == "set_loss":
        fleet.set_loss(int(i), float(request["loss"]), which)
    elif cmd == "set_latency":
        fleet.set_latency(int(i), float(request["latency_s"]), which)
    elif cmd == "drop_gps":
        fleet.set_gps(int(i), False)
    elif cmd == "restore_gps":
        fleet.set_gps(int(i), True)
    elif cmd == "set_wind":
        fleet.set_wind(
            float(request["east_mps"]),
            float(request["north_mps"]),
            float(request.get("gust_mps", 0.0)),
            None if i is None else int(i),
        )
    elif cmd == "set_battery":
        fleet.set_battery(int(i), float(request["percent"]))
    elif cmd == "load_parcel":
        fleet.load_parcel(int(i), float(request["kg"]))
    elif cmd == "statustext":
        fleet.statustext(int(i), int(request.get("severity", 2)), str(request["text"]))
    else:
        raise FleetError(f"unknown cmd {cmd!r}")
    return {"ok": True}


class ControlServer:
    """Serves `apply` on 127.0.0.1:port so tests and operators can inject faults from outside."""

    def __init__(self, fleet: Fleet, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fleet = fleet
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, limit=MAX_LINE_BYTES
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(b'{"ok": false, "error": "line too long"}\n')
                    break
                if not line:
                    break
                writer.write(json.dumps(self.handle_line(line)).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            return apply(self.fleet, request)
        except (FleetError, KeyError, ValueError, TypeError) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


async def request(port: int, payload: dict[str, Any], host: str = "127.0.0.1") -> dict[str, Any]:
    """Send one control request and return the reply."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(json.dumps(payload).encode() + b"\n")
        await writer.drain()
        reply: dict[str, Any] = json.loads(await reader.readline())
        return reply
    finally:
        writer.close()
