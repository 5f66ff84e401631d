"""A minimal pymavlink ground station for tests: a UDP socket, a message log, and `expect`."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mav

Predicate = Callable[[Any], bool]


class TestGcs(asyncio.DatagramProtocol):
    """Listens where a simulated vehicle sends its link; answers to where it came from."""

    __test__ = False

    def __init__(self, sysid: int = 255, compid: int = 190) -> None:
        self.encoder = mav.MAVLink(None, sysid, compid)
        self.decoder = mav.MAVLink(None, sysid, compid)
        self.decoder.robust_parsing = True
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[str, int] | None = None
        self.peers: dict[int, tuple[str, int]] = {}
        self.log: list[Any] = []
        self._waiters: list[tuple[Predicate, asyncio.Future[Any]]] = []

    @classmethod
    async def listen(cls, port: int, **kw: Any) -> TestGcs:
        loop = asyncio.get_running_loop()
        gcs = cls(**kw)
        await loop.create_datagram_endpoint(lambda: gcs, local_addr=("127.0.0.1", port))
        return gcs

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for msg in self.decoder.parse_buffer(data) or []:
            if msg.get_type() == "BAD_DATA":
                continue
            self.peer = addr
            self.peers[msg.get_srcSystem()] = addr
            self.log.append(msg)
            for pred, fut in list(self._waiters):
                if not fut.done() and pred(msg):
                    fut.set_result(msg)

    # -- sending ---------------------------------------------------------------------

    def send(self, msg: Any, sysid: int | None = None) -> None:
        assert self.transport is not None
        addr = self.peers.get(sysid) if sysid is not None else self.peer
        assert addr is not None, "nothing heard from the vehicle yet"
        self.transport.sendto(msg.pack(self.encoder), addr)

    def send_raw(self, data: bytes, sysid: int | None = None) -> None:
        assert self.transport is not None
        addr = self.peers.get(sysid) if sysid is not None else self.peer
        assert addr is not None
        self.transport.sendto(data, addr)

    def heartbeat(self) -> None:
        self.send(
            mav.MAVLink_heartbeat_message(
                mav.MAV_TYPE_GCS, mav.MAV_AUTOPILOT_INVALID, 0, 0, mav.MAV_STATE_ACTIVE, 3
            )
        )

    def command(self, cmd: int, *params: float, target: int = 1) -> None:
        p = [*params, *[0.0] * (7 - len(params))]
        self.send(mav.MAVLink_command_long_message(target, 1, cmd, 0, *p), sysid=target)

    # -- waiting ---------------------------------------------------------------------

    async def expect(
        self,
        mtype: str,
        pred: Predicate | None = None,
        timeout: float = 5.0,
        since: int | None = None,
    ) -> Any:
        """The first message of `mtype` matching `pred`, received after index `since`
        (default: from now on)."""

        def match(m: Any) -> bool:
            return m.get_type() == mtype and (pred is None or pred(m))

        start = len(self.log) if since is None else since
        for m in self.log[start:]:
            if match(m):
                return m
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AssertionError(f"no {mtype} matching within {timeout} s") from None
        finally:
            self._waiters.remove(entry)

    async def command_ack(
        self, cmd: int, *params: float, target: int = 1, timeout: float = 3.0
    ) -> int:
        mark = len(self.log)
        self.command(cmd, *params, target=target)
        ack = await self.expect("COMMAND_ACK", lambda m: m.command == cmd, timeout, since=mark)
        return int(ack.result)

    async def wait_heard(self, timeout: float = 5.0) -> Any:
        return await self.expect("HEARTBEAT", timeout=timeout, since=0)

    def count(self, mtype: str, since: int = 0) -> int:
        return sum(1 for m in self.log[since:] if m.get_type() == mtype)

    @contextlib.asynccontextmanager
    async def heartbeats(self, period_s: float = 0.2):  # type: ignore[no-untyped-def]
        """Keep sending GCS heartbeats while inside the block."""

        async def beat() -> None:
            while True:
                if self.peer is not None:
                    self.heartbeat()
                await asyncio.sleep(period_s)

        task = asyncio.create_task(beat(), name="test-gcs-heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def mission_item(
    seq: int,
    lat: float,
    lon: float,
    alt: float,
    command: int = mav.MAV_CMD_NAV_WAYPOINT,
    *,
    frame: int | None = None,
    params: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    mission_type: int = mav.MAV_MISSION_TYPE_MISSION,
    target: int = 1,
) -> Any:
    fr = mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT if frame is None else frame
    x = int(round(lat * 1e7)) if math.isfinite(lat) else 0
    y = int(round(lon * 1e7)) if math.isfinite(lon) else 0
    return mav.MAVLink_mission_item_int_message(
        target, 1, seq, fr, command, 0, 1, *params, x, y, alt, mission_type
    )


def square_fence(lat: float, lon: float, half_deg: float,
                 mission_type: int = mav.MAV_MISSION_TYPE_FENCE) -> list[Any]:
    """A square inclusion polygon around (lat, lon), as FENCE items."""
    corners = [(lat - half_deg, lon - half_deg), (lat - half_deg, lon + half_deg),
               (lat + half_deg, lon + half_deg), (lat + half_deg, lon - half_deg)]
    return [mission_item(i, la, lo, 0, mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
                         frame=mav.MAV_FRAME_GLOBAL_INT, params=(4, 0, 0, 0),
                         mission_type=mission_type)
            for i, (la, lo) in enumerate(corners)]


async def upload(
    gcs: TestGcs,
    items: list[Any],
    mission_type: int = mav.MAV_MISSION_TYPE_MISSION,
    target: int = 1,
    timeout: float = 5.0,
) -> int:
    """Upload `items` answering the vehicle's requests; returns the MISSION_ACK result."""
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_count_message(target, 1, len(items), mission_type), sysid=target)
    seen = mark
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        # Wait for whichever of request/request_int/ack comes next.
        fut_types = ("MISSION_REQUEST_INT", "MISSION_REQUEST", "MISSION_ACK")
        msg = None
        while msg is None:
            for i in range(seen, len(gcs.log)):
                m = gcs.log[i]
                if m.get_type() in fut_types and m.get_srcSystem() == target:
                    msg = m
                    seen = i + 1
                    break
            if msg is None:
                if loop.time() > deadline:
                    raise AssertionError("upload timed out")
                await asyncio.sleep(0.005)
        if msg.get_type() == "MISSION_ACK":
            return int(msg.type)
        gcs.send(items[msg.seq], sysid=target)
    raise AssertionError("upload timed out")


async def download(
    gcs: TestGcs, mission_type: int = mav.MAV_MISSION_TYPE_MISSION, target: int = 1
) -> list[Any]:
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_request_list_message(target, 1, mission_type), sysid=target)
    cnt = await gcs.expect("MISSION_COUNT", lambda m: m.mission_type == mission_type, since=mark)
    items = []
    for seq in range(cnt.count):
        mark = len(gcs.log)
        gcs.send(
            mav.MAVLink_mission_request_int_message(target, 1, seq, mission_type), sysid=target
        )
        items.append(await gcs.expect("MISSION_ITEM_INT", lambda m, s=seq: m.seq == s, since=mark))
    gcs.send(
        mav.MAVLink_mission_ack_message(target, 1, mav.MAV_MISSION_ACCEPTED, mission_type),
        sysid=target,
    )
    return items


async def until(cond: Callable[[], object], timeout: float, what: str = "condition") -> None:
    """Poll a condition on simulator state (not a sleep to paper over a race: it has a deadline
    and fails loudly)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)
