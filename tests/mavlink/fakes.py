"""In-memory vehicle peers, a lossy link, a stepped clock and a driver for sans-io transactions."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import nestsim.mission as sim_mission
from nestsim.flavour import PX4, Flavour
from nestsim.mission import Item, MissionServer
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.protocols.base import Message, Transaction
from nestd.mavlink.protocols.mission import MissionItem

GCS = (255, 190)  # the daemon's (sysid, compid)
VEHICLE = (1, 1)  # the autopilot's
HOME_LAT_E7 = 473_977_420
HOME_LON_E7 = 85_455_940


class Peer(Protocol):
    def on_message(self, msg: Message, now_s: float) -> list[Message]: ...

    def on_timer(self, now_s: float) -> list[Message]: ...


class FakeClock:
    """Time that moves only when a test (or `run`) says so."""

    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def advance(self, dt_s: float) -> float:
        self.now_s += dt_s
        return self.now_s


class Codec:
    """Packs a message as `src` would and parses it back: what the wire does to a message
    (float32 rounding, str param_id, header with the sender's ids)."""

    def __init__(self, src: tuple[int, int]) -> None:
        self._packer = mav.MAVLink(None, srcSystem=src[0], srcComponent=src[1])
        self._parser = mav.MAVLink(None)
        self._parser.robust_parsing = True

    def __call__(self, msg: Message) -> Message:
        self._packer.seq = (self._packer.seq + 1) % 256
        data = msg.pack(self._packer)
        out = self._parser.parse_buffer(data)
        assert out is not None and len(out) == 1, msg
        return out[0]


@dataclass
class LinkStats:
    sent_up: int = 0  # GCS -> vehicle, offered to the link
    sent_down: int = 0  # vehicle -> GCS
    dropped_up: int = 0
    dropped_down: int = 0
    duplicated: int = 0
    reordered: int = 0

    @property
    def sent(self) -> int:
        return self.sent_up + self.sent_down


UP = "up"
DOWN = "down"


@dataclass
class LossyLink:
    """Both directions of a radio link: seeded loss, duplication and reordering.

    A reordered message is held back by up to `reorder_delay_s`, so later ones overtake it.
    """

    seed: int = 0
    loss_up: float = 0.0
    loss_down: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    latency_s: float = 0.02
    reorder_delay_s: float = 0.3
    stats: LinkStats = field(default_factory=LinkStats)
    # Drop the next n messages of a type in a direction: {(UP, "MISSION_COUNT"): 1}
    drop_next: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._queue: list[tuple[float, int, str, Message]] = []
        self._order = itertools.count()
        self._codecs = {UP: Codec(GCS), DOWN: Codec(VEHICLE)}
        self.log: list[tuple[float, str, str]] = []  # (time, direction, type) of delivered

    def send(self, direction: str, msgs: Iterable[Message], now_s: float) -> None:
        loss = self.loss_up if direction == UP else self.loss_down
        for msg in msgs:
            if direction == UP:
                self.stats.sent_up += 1
            else:
                self.stats.sent_down += 1
            key = (direction, msg.get_type())
            if self.drop_next.get(key):
                self.drop_next[key] -= 1
                self._count_drop(direction)
                continue
            if self._rng.random() < loss:
                self._count_drop(direction)
                continue
            wire = self._codecs[direction](msg)
            copies = 2 if self._rng.random() < self.duplicate else 1
            self.stats.duplicated += copies - 1
            for _ in range(copies):
                delay = self.latency_s
                if self._rng.random() < self.reorder:
                    self.stats.reordered += 1
                    delay += self._rng.uniform(0.0, self.reorder_delay_s)
                heapq.heappush(self._queue, (now_s + delay, next(self._order), direction, wire))

    def _count_drop(self, direction: str) -> None:
        if direction == UP:
            self.stats.dropped_up += 1
        else:
            self.stats.dropped_down += 1

    def next_delivery_s(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now_s: float) -> list[tuple[str, Message]]:
        out = []
        while self._queue and self._queue[0][0] <= now_s:
            t, _, direction, msg = heapq.heappop(self._queue)
            self.log.append((t, direction, msg.get_type()))
            out.append((direction, msg))
        return out


class Stuck(AssertionError):
    """The transaction did not finish within the simulated time limit."""


@dataclass
class RunReport:
    elapsed_s: float
    stats: LinkStats


def run(
    txn: Transaction,
    peer: Peer,
    link: LossyLink | None = None,
    clock: FakeClock | None = None,
    *,
    limit_s: float = 3600.0,
    peer_tick_s: float = 0.05,
) -> RunReport:
    """Drive `txn` against `peer` through `link` on simulated time until it is done."""
    link = link if link is not None else LossyLink()
    clock = clock if clock is not None else FakeClock()
    t0 = clock.now_s
    link.send(UP, txn.start(clock.now_s), clock.now_s)
    next_tick = clock.now_s + peer_tick_s
    while not txn.done:
        times = [next_tick, link.next_delivery_s(), txn.deadline_s]
        clock.now_s = max(clock.now_s, min(t for t in times if t is not None))
        now = clock.now_s
        if now - t0 > limit_s:
            raise Stuck(f"not done after {limit_s} simulated s")
        for direction, msg in link.pop_due(now):
            if direction == UP:
                link.send(DOWN, peer.on_message(msg, now), now)
            else:
                link.send(UP, txn.on_message(msg, now), now)
        deadline = txn.deadline_s
        if deadline is not None and now >= deadline:
            link.send(UP, txn.on_timer(now), now)
        if now >= next_tick:
            link.send(DOWN, peer.on_timer(now), now)
            next_tick = now + peer_tick_s
    return RunReport(clock.now_s - t0, link.stats)


# -- mission peer ---------------------------------------------------------------------------


def sim_item(item: MissionItem) -> Item:
    return Item(**asdict(item))


def home_item() -> Item:
    return Item(0, mav.MAV_FRAME_GLOBAL, mav.MAV_CMD_NAV_WAYPOINT, 0, 1, 0.0, 0.0, 0.0, 0.0,
                HOME_LAT_E7, HOME_LON_E7, 488.0, sim_mission.MISSION)  # fmt: skip


class MissionPeer:
    """The simulator's vehicle-side mission server, with a real autopilot's habits.

    nestsim's MissionServer re-requests an item 5 times, 0.5 s apart, then cancels, and
    silently drops items that come when no upload runs. Real firmware differs, and this
    wraps the unchanged server to behave like it (defaults follow `flavour`):
    - patience: PX4 re-requests every 250 ms until its 5 s protocol timeout; ArduPilot
      every 1 s until its 8 s upload timeout (MissionItemProtocol::update);
    - `after_transfer`, an item arriving after the upload finished: PX4 (PR 9547) ACKs a
      duplicate of the last item again ("reack"); ArduPilot answers MAV_MISSION_ERROR
      ("error", GCS_MAVLINK::handle_mission_item); "ignore" is pre-2018 PX4's silence;
    - `nack_duplicates`: ArduPilot answers an item other than the one it asked for with
      MAV_MISSION_INVALID_SEQUENCE and carries on waiting for the right one.
    `old_firmware` turns our MISSION_REQUEST_INT into MISSION_REQUEST so the server answers
    with float MISSION_ITEMs, as pre-2018 firmware did.
    """

    def __init__(
        self,
        flavour: Flavour = PX4,
        *,
        retry_timeout_s: float | None = None,
        max_retries: int | None = None,
        after_transfer: str | None = None,
        nack_duplicates: bool | None = None,
        old_firmware: bool = False,
    ) -> None:
        ardupilot = flavour.mission_seq0_is_home
        self.server = MissionServer(flavour, home_item, self._changed)
        self.retry_timeout_s = retry_timeout_s or (1.0 if ardupilot else 0.25)
        self.max_retries = max_retries if max_retries is not None else (7 if ardupilot else 20)
        self.after_transfer = after_transfer or ("error" if ardupilot else "reack")
        self.nack_duplicates = ardupilot if nack_duplicates is None else nack_duplicates
        self.old_firmware = old_firmware
        self.changed: list[int] = []
        self.received: list[str] = []
        self._last_upload: tuple[int, int, int] | None = None  # (mission_type, last seq, result)
        self._codec = Codec(GCS)

    def _changed(self, mission_type: int) -> None:
        self.changed.append(mission_type)

    def items(self, mission_type: int = sim_mission.MISSION) -> list[MissionItem]:
        return [MissionItem(**asdict(it)) for it in self.server.items(mission_type)]

    def load(self, items: Sequence[MissionItem], mission_type: int = sim_mission.MISSION) -> None:
        self.server.lists[mission_type] = [sim_item(it) for it in items]

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        t = msg.get_type()
        self.received.append(t)
        if self.old_firmware and t == "MISSION_REQUEST_INT":
            msg = self._codec(
                mav.MAVLink_mission_request_message(
                    msg.target_system, msg.target_component, msg.seq, msg.mission_type
                )
            )
        upload = self.server._upload  # a fake may look inside the simulator
        if t in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            if upload is None and self.after_transfer == "ignore":
                return []  # pre-2018 PX4: a late item is dropped without an answer
            if upload is None:
                last = self._last_upload
                if self.after_transfer == "error":
                    return [self._ack(msg, msg.mission_type, mav.MAV_MISSION_ERROR)]
                if last is not None and (msg.mission_type, msg.seq) == last[:2]:
                    return [self._ack(msg, last[0], last[2])]
            if upload is not None and self.nack_duplicates and msg.seq < upload.next_seq:
                return [self._ack(msg, msg.mission_type, mav.MAV_MISSION_INVALID_SEQUENCE)]
        out: list[Message] = self.server.on_message(msg, now_s)
        if upload is not None and self.server._upload is None:
            for reply in out:
                if reply.get_type() == "MISSION_ACK":
                    self._last_upload = (upload.mission_type, upload.count - 1, reply.type)
        return out

    def on_timer(self, now_s: float) -> list[Message]:
        # The server reads its retry budget from module constants; lend it ours for the call.
        saved = sim_mission.MAX_RETRIES, sim_mission.RETRY_TIMEOUT_S
        sim_mission.MAX_RETRIES, sim_mission.RETRY_TIMEOUT_S = (
            self.max_retries,
            self.retry_timeout_s,
        )
        try:
            out: list[Message] = self.server.on_timer(now_s)
            return out
        finally:
            sim_mission.MAX_RETRIES, sim_mission.RETRY_TIMEOUT_S = saved

    def _ack(self, msg: Message, mission_type: int, result: int) -> Message:
        return mav.MAVLink_mission_ack_message(
            msg.get_srcSystem(), msg.get_srcComponent(), result, mission_type
        )


class Scripted:
    """A peer that answers by a function of the incoming message (None: stay silent)."""

    def __init__(self, reply: Callable[[Message, float], list[Message] | None]) -> None:
        self.reply = reply
        self.received: list[Message] = []

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        self.received.append(msg)
        return self.reply(msg, now_s) or []

    def on_timer(self, now_s: float) -> list[Message]:
        return []


# -- parameter peer -------------------------------------------------------------------------


class ParamPeer:
    """A vehicle's parameter table, encoded the way its flavour encodes (nestsim's own
    encode/decode, independent of ours). `refuse` maps a name to the value the vehicle keeps
    whatever is set (read-only or clamped parameters)."""

    def __init__(self, flavour: Flavour = PX4, refuse: dict[str, float] | None = None) -> None:
        self.flavour = flavour
        self.defs = list(flavour.params)
        self.values: dict[str, float] = {d.name: float(d.default) for d in self.defs}
        self.refuse = refuse or {}
        self.sets: list[tuple[str, float]] = []

    def _value_msg(self, index: int, *, unsolicited: bool = False) -> Message:
        d = self.defs[index]
        wire = self.flavour.encode_param(self.values[d.name], d.type)
        return mav.MAVLink_param_value_message(
            d.name.encode(), wire, int(d.type), len(self.defs), 65535 if unsolicited else index
        )

    def _index(self, name: str) -> int | None:
        for i, d in enumerate(self.defs):
            if d.name == name:
                return i
        return None

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        t = msg.get_type()
        if t == "PARAM_REQUEST_LIST":
            return [self._value_msg(i) for i in range(len(self.defs))]
        if t == "PARAM_REQUEST_READ":
            name = msg.param_id if isinstance(msg.param_id, str) else msg.param_id.decode()
            i = self._index(name) if name else msg.param_index
            if i is None or not 0 <= i < len(self.defs):
                return []
            return [self._value_msg(i)]
        if t == "PARAM_SET":
            i = self._index(msg.param_id)
            if i is None:
                return []
            d = self.defs[i]
            value = self.flavour.decode_param(msg.param_value, d.type)
            self.sets.append((d.name, value))
            self.values[d.name] = self.refuse.get(d.name, value)
            return [self._value_msg(i)]
        return []

    def on_timer(self, now_s: float) -> list[Message]:
        return []


# -- command peer ---------------------------------------------------------------------------


def command_ack(
    command: int,
    result: int,
    *,
    progress: int = 0,
    to: tuple[int, int] = GCS,
    result_param2: int = 0,
) -> Message:
    return mav.MAVLink_command_ack_message(command, result, progress, result_param2, to[0], to[1])


class CommandPeer:
    """Answers every COMMAND_LONG/COMMAND_INT with ACCEPTED (or `results[command]`), counting
    what it executed; `send_before_ack` is what REQUEST_MESSAGE makes it send first."""

    def __init__(
        self,
        results: dict[int, int] | None = None,
        send_before_ack: Callable[[Message], list[Message]] | None = None,
    ) -> None:
        self.results = results or {}
        self.send_before_ack = send_before_ack
        self.executed: list[tuple[int, int]] = []  # (command, confirmation)

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        t = msg.get_type()
        if t not in ("COMMAND_LONG", "COMMAND_INT"):
            return []
        self.executed.append((msg.command, getattr(msg, "confirmation", 0)))
        out: list[Message] = []
        if self.send_before_ack is not None:
            out += self.send_before_ack(msg)
        src = (msg.get_srcSystem(), msg.get_srcComponent())
        out.append(command_ack(msg.command, self.results.get(msg.command, 0), to=src))
        return out

    def on_timer(self, now_s: float) -> list[Message]:
        return []


def autopilot_version() -> Message:
    return mav.MAVLink_autopilot_version_message(
        0, PX4.flight_sw_version, 0, 0, 0, [0] * 8, [0] * 8, [0] * 8, 0, 0, 0
    )
