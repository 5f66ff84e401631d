"""The vehicle side of the MAVLink mission protocol (mission, fence, rally), sans-io."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestsim.flavour import Flavour

MISSION = mav.MAV_MISSION_TYPE_MISSION
FENCE = mav.MAV_MISSION_TYPE_FENCE
RALLY = mav.MAV_MISSION_TYPE_RALLY
ALL_TYPES = mav.MAV_MISSION_TYPE_ALL

GLOBAL_FRAMES = frozenset(
    {
        mav.MAV_FRAME_GLOBAL,
        mav.MAV_FRAME_GLOBAL_RELATIVE_ALT,
        mav.MAV_FRAME_GLOBAL_INT,
        mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
        mav.MAV_FRAME_GLOBAL_TERRAIN_ALT,
        mav.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT,
    }
)
AMSL_FRAMES = frozenset({mav.MAV_FRAME_GLOBAL, mav.MAV_FRAME_GLOBAL_INT})

# Commands that carry a position in x/y/z.
POSITIONAL = frozenset(
    {
        mav.MAV_CMD_NAV_WAYPOINT,
        mav.MAV_CMD_NAV_LOITER_UNLIM,
        mav.MAV_CMD_NAV_LOITER_TURNS,
        mav.MAV_CMD_NAV_LOITER_TIME,
        mav.MAV_CMD_NAV_LAND,
        mav.MAV_CMD_NAV_TAKEOFF,
        mav.MAV_CMD_NAV_LOITER_TO_ALT,
        mav.MAV_CMD_NAV_FENCE_RETURN_POINT,
        mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
        mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
        mav.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION,
        mav.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION,
        mav.MAV_CMD_NAV_RALLY_POINT,
    }
)

MISSION_COMMANDS = frozenset(
    {
        mav.MAV_CMD_NAV_WAYPOINT,
        mav.MAV_CMD_NAV_LOITER_UNLIM,
        mav.MAV_CMD_NAV_LOITER_TURNS,
        mav.MAV_CMD_NAV_LOITER_TIME,
        mav.MAV_CMD_NAV_RETURN_TO_LAUNCH,
        mav.MAV_CMD_NAV_LAND,
        mav.MAV_CMD_NAV_TAKEOFF,
        mav.MAV_CMD_NAV_LOITER_TO_ALT,
        mav.MAV_CMD_NAV_DELAY,
        mav.MAV_CMD_CONDITION_DELAY,
        mav.MAV_CMD_CONDITION_YAW,
        mav.MAV_CMD_DO_JUMP,
        mav.MAV_CMD_DO_CHANGE_SPEED,
        mav.MAV_CMD_DO_SET_HOME,
        mav.MAV_CMD_DO_SET_SERVO,
        mav.MAV_CMD_DO_SET_ROI,
        mav.MAV_CMD_DO_SET_ROI_LOCATION,
        mav.MAV_CMD_DO_SET_ROI_NONE,
        mav.MAV_CMD_DO_GRIPPER,
        mav.MAV_CMD_DO_WINCH,
        mav.MAV_CMD_DO_MOUNT_CONTROL,
        mav.MAV_CMD_DO_GIMBAL_MANAGER_PITCHYAW,
        mav.MAV_CMD_IMAGE_START_CAPTURE,
        mav.MAV_CMD_IMAGE_STOP_CAPTURE,
    }
)
FENCE_COMMANDS = frozenset(
    {
        mav.MAV_CMD_NAV_FENCE_RETURN_POINT,
        mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
        mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
        mav.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION,
        mav.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION,
    }
)
RALLY_COMMANDS = frozenset({mav.MAV_CMD_NAV_RALLY_POINT})
COMMANDS_BY_TYPE = {MISSION: MISSION_COMMANDS, FENCE: FENCE_COMMANDS, RALLY: RALLY_COMMANDS}
POLYGON_VERTEX = frozenset(
    {mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION}
)
CIRCLE = frozenset({mav.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION, mav.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION})


@dataclass(frozen=True, slots=True)
class Item:
    """One stored item, as MISSION_ITEM_INT carries it (x/y in degrees * 1e7)."""

    seq: int
    frame: int
    command: int
    current: int
    autocontinue: int
    param1: float
    param2: float
    param3: float
    param4: float
    x: int
    y: int
    z: float
    mission_type: int

    @property
    def lat_deg(self) -> float:
        return self.x / 1e7

    @property
    def lon_deg(self) -> float:
        return self.y / 1e7


class Step(enum.Enum):
    IDLE = "idle"
    RECEIVING = "receiving"


# PX4 re-requests every 250 ms and gives up after about 5 s without progress.
MAX_RETRIES = 20
RETRY_TIMEOUT_S = 0.25


@dataclass(slots=True)
class _Upload:
    partner: tuple[int, int]
    mission_type: int
    count: int
    first_seq: int  # non-zero only for a partial write
    next_seq: int
    items: list[Item]
    last_sent_s: float
    retries: int = 0


def _item_from_msg(msg: mav.MAVLink_message) -> Item:
    if msg.get_type() == "MISSION_ITEM":
        x = msg.x
        y = msg.y
        xi = int(round(x * 1e7)) if math.isfinite(x) and abs(x) < 1000 else _BAD_COORD
        yi = int(round(y * 1e7)) if math.isfinite(y) and abs(y) < 1000 else _BAD_COORD
    else:
        xi, yi = msg.x, msg.y
    return Item(
        seq=msg.seq,
        frame=msg.frame,
        command=msg.command,
        current=msg.current,
        autocontinue=msg.autocontinue,
        param1=msg.param1,
        param2=msg.param2,
        param3=msg.param3,
        param4=msg.param4,
        x=xi,
        y=yi,
        z=msg.z,
        mission_type=getattr(msg, "mission_type", MISSION),
    )


_BAD_COORD = 2**31 - 1


def validate_item(item: Item) -> int:
    """MAV_MISSION_ACCEPTED, or the MAV_MISSION_RESULT that refuses this item."""
    if item.command not in COMMANDS_BY_TYPE.get(item.mission_type, frozenset()):
        return mav.MAV_MISSION_UNSUPPORTED
    if item.command in POSITIONAL:
        if item.frame not in GLOBAL_FRAMES:
            return mav.MAV_MISSION_UNSUPPORTED_FRAME
        if abs(item.x) > 900_000_000:
            return mav.MAV_MISSION_INVALID_PARAM5_X
        if abs(item.y) > 1_800_000_000:
            return mav.MAV_MISSION_INVALID_PARAM6_Y
        if not math.isfinite(item.z):
            return mav.MAV_MISSION_INVALID_PARAM7
    elif item.frame not in GLOBAL_FRAMES and item.frame != mav.MAV_FRAME_MISSION:
        return mav.MAV_MISSION_UNSUPPORTED_FRAME
    if item.command in POLYGON_VERTEX and (
        not math.isfinite(item.param1) or item.param1 < 3 or item.param1 != int(item.param1)
    ):
        return mav.MAV_MISSION_INVALID_PARAM1
    if item.command in CIRCLE and (not math.isfinite(item.param1) or item.param1 <= 0):
        return mav.MAV_MISSION_INVALID_PARAM1
    if item.command == mav.MAV_CMD_NAV_LOITER_TIME and (
        not math.isfinite(item.param1) or item.param1 < 0
    ):
        return mav.MAV_MISSION_INVALID_PARAM1
    if item.command == mav.MAV_CMD_DO_JUMP and not (
        math.isfinite(item.param1) and item.param1 >= 0
    ):
        return mav.MAV_MISSION_INVALID_PARAM1
    if item.command == mav.MAV_CMD_DO_JUMP and not math.isfinite(item.param2):
        return mav.MAV_MISSION_INVALID_PARAM2
    return mav.MAV_MISSION_ACCEPTED


def validate_polygons(items: list[Item]) -> int:
    """Consecutive polygon vertices must come in groups of exactly param1."""
    i = 0
    while i < len(items):
        it = items[i]
        if it.command in POLYGON_VERTEX:
            n = int(it.param1)
            group = items[i : i + n]
            if len(group) != n or any(g.command != it.command or int(g.param1) != n for g in group):
                return mav.MAV_MISSION_INVALID_PARAM1
            i += n
        else:
            i += 1
    return mav.MAV_MISSION_ACCEPTED


class MissionServer:
    """Stores mission/fence/rally lists and runs uploads/downloads for one vehicle.

    Feed it messages addressed to the vehicle (`on_message`) and the time (`on_timer`);
    it returns the messages to send back. `home` supplies seq 0 on ArduPilot downloads.
    """

    def __init__(
        self,
        flavour: Flavour,
        home_item: Callable[[], Item],
        on_changed: Callable[[int], None],
    ) -> None:
        self.flavour = flavour
        self.lists: dict[int, list[Item]] = {MISSION: [], FENCE: [], RALLY: []}
        self._home_item = home_item
        self._on_changed = on_changed
        self._upload: _Upload | None = None
        # (partner, mission type, last seq, result) of the last finished upload
        self._last_ack: tuple[tuple[int, int], int, int, int] | None = None
        self.ignored = 0

    @property
    def step(self) -> Step:
        return Step.IDLE if self._upload is None else Step.RECEIVING

    def items(self, mission_type: int) -> list[Item]:
        return self.lists[mission_type]

    def count(self, mission_type: int) -> int:
        return len(self.lists[mission_type])

    # -- inputs ---------------------------------------------------------------

    def on_message(self, msg: mav.MAVLink_message, now_s: float) -> list[mav.MAVLink_message]:
        t = msg.get_type()
        partner = (msg.get_srcSystem(), msg.get_srcComponent())
        mtype = getattr(msg, "mission_type", MISSION)
        if t in (
            "MISSION_COUNT",
            "MISSION_WRITE_PARTIAL_LIST",
            "MISSION_REQUEST_LIST",
            "MISSION_CLEAR_ALL",
        ) and mtype not in (MISSION, FENCE, RALLY, ALL_TYPES):
            return [self._ack(partner, mtype, mav.MAV_MISSION_UNSUPPORTED)]
        if t == "MISSION_COUNT":
            return self._on_count(partner, mtype, msg.count, now_s)
        if t == "MISSION_WRITE_PARTIAL_LIST":
            return self._on_partial(partner, mtype, msg.start_index, msg.end_index, now_s)
        if t in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            return self._on_item(partner, msg, now_s)
        if t == "MISSION_REQUEST_LIST":
            return [
                mav.MAVLink_mission_count_message(
                    partner[0], partner[1], self._download_count(mtype), mtype
                )
            ]
        if t in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            if self._upload is not None:
                self.ignored += 1
                return []
            return self._on_request(partner, msg.seq, mtype, as_int=t == "MISSION_REQUEST_INT")
        if t == "MISSION_CLEAR_ALL":
            if self._upload is not None:
                return [self._ack(partner, mtype, mav.MAV_MISSION_DENIED)]
            for k in (MISSION, FENCE, RALLY) if mtype == ALL_TYPES else (mtype,):
                self.lists[k] = []
                self._on_changed(k)
            return [self._ack(partner, mtype, mav.MAV_MISSION_ACCEPTED)]
        if t == "MISSION_ACK":
            return []  # end of a download; nothing to do
        return []

    def on_timer(self, now_s: float) -> list[mav.MAVLink_message]:
        up = self._upload
        if up is None or now_s - up.last_sent_s < RETRY_TIMEOUT_S:
            return []
        if up.retries >= MAX_RETRIES:
            self._upload = None
            return [self._ack(up.partner, up.mission_type, mav.MAV_MISSION_OPERATION_CANCELLED)]
        up.retries += 1
        up.last_sent_s = now_s
        return [self._request(up)]

    # -- upload ---------------------------------------------------------------

    def _on_count(
        self, partner: tuple[int, int], mtype: int, count: int, now_s: float
    ) -> list[mav.MAVLink_message]:
        if mtype == ALL_TYPES:
            return [self._ack(partner, mtype, mav.MAV_MISSION_UNSUPPORTED)]
        up = self._upload
        if up is not None and (up.partner != partner or up.mission_type != mtype):
            return [self._ack(partner, mtype, mav.MAV_MISSION_DENIED)]
        if count > self.flavour.max_items[mtype]:
            self._upload = None
            return [self._ack(partner, mtype, mav.MAV_MISSION_NO_SPACE)]
        if count == 0:
            self._upload = None
            self.lists[mtype] = []
            self._on_changed(mtype)
            return [self._ack(partner, mtype, mav.MAV_MISSION_ACCEPTED)]
        self._upload = _Upload(partner, mtype, count, 0, 0, [], now_s)
        self._last_ack = None
        return [self._request(self._upload)]

    def _on_partial(
        self, partner: tuple[int, int], mtype: int, start: int, end: int, now_s: float
    ) -> list[mav.MAVLink_message]:
        if not self.flavour.mission_seq0_is_home:
            # PX4 doesn't implement partial writes.
            return [self._ack(partner, mtype, mav.MAV_MISSION_UNSUPPORTED)]
        current = self.lists.get(mtype, [])
        if end == -1:
            end = start
        if mtype == ALL_TYPES or start < 0 or end < start or end >= len(current):
            return [self._ack(partner, mtype, mav.MAV_MISSION_INVALID_SEQUENCE)]
        if self._upload is not None:
            return [self._ack(partner, mtype, mav.MAV_MISSION_DENIED)]
        self._upload = _Upload(partner, mtype, end + 1, start, start, [], now_s)
        return [self._request(self._upload)]

    def _on_item(
        self, partner: tuple[int, int], msg: mav.MAVLink_message, now_s: float
    ) -> list[mav.MAVLink_message]:
        up = self._upload
        mtype = getattr(msg, "mission_type", MISSION)
        if up is None and self._last_ack is not None:
            p, t, last_seq, result = self._last_ack
            if (p, t, last_seq) == (partner, mtype, msg.seq):
                # Our final ACK was lost and the last item came again: PX4 re-sends the ACK.
                return [self._ack(partner, mtype, result)]
        if up is None or up.partner != partner or up.mission_type != mtype:
            self.ignored += 1
            return []
        if msg.seq < up.next_seq:
            self.ignored += 1  # a duplicate of an item we already have
            return []
        if msg.seq > up.next_seq:
            self._upload = None
            return [self._ack(partner, mtype, mav.MAV_MISSION_INVALID_SEQUENCE)]
        item = _item_from_msg(msg)
        home_slot = self.flavour.mission_seq0_is_home and mtype == MISSION and item.seq == 0
        if not home_slot:
            result = validate_item(item)
            if result != mav.MAV_MISSION_ACCEPTED:
                self._upload = None
                return [self._ack(partner, mtype, result)]
        up.items.append(item)
        up.next_seq += 1
        up.retries = 0
        up.last_sent_s = now_s
        if up.next_seq < up.count:
            return [self._request(up)]
        return self._finish(up)

    def _finish(self, up: _Upload) -> list[mav.MAVLink_message]:
        self._upload = None
        if up.first_seq:
            new = list(self.lists[up.mission_type])
            new[up.first_seq : up.count] = up.items
        else:
            new = up.items
        if self.flavour.mission_seq0_is_home and up.mission_type == MISSION and new:
            new[0] = replace(self._home_item(), seq=0)  # whatever was sent there is ignored
        self._last_ack = None
        if up.mission_type == FENCE:
            result = validate_polygons(new)
            if result != mav.MAV_MISSION_ACCEPTED:
                return [self._ack(up.partner, up.mission_type, result)]
        self.lists[up.mission_type] = [replace(it, seq=i) for i, it in enumerate(new)]
        self._on_changed(up.mission_type)
        self._last_ack = (up.partner, up.mission_type, up.count - 1, mav.MAV_MISSION_ACCEPTED)
        return [self._ack(up.partner, up.mission_type, mav.MAV_MISSION_ACCEPTED)]

    def _request(self, up: _Upload) -> mav.MAVLink_message:
        sysid, compid = up.partner
        if self.flavour.requests_with_mission_request_int:
            return mav.MAVLink_mission_request_int_message(
                sysid, compid, up.next_seq, up.mission_type
            )
        return mav.MAVLink_mission_request_message(sysid, compid, up.next_seq, up.mission_type)

    # -- download -------------------------------------------------------------

    def _download_count(self, mtype: int) -> int:
        if mtype == ALL_TYPES:
            return 0
        n = len(self.lists[mtype])
        if self.flavour.mission_seq0_is_home and mtype == MISSION and n == 0:
            return 1  # ArduPilot always holds home at seq 0
        return n

    def _on_request(
        self, partner: tuple[int, int], seq: int, mtype: int, as_int: bool
    ) -> list[mav.MAVLink_message]:
        if mtype == ALL_TYPES:
            return [self._ack(partner, mtype, mav.MAV_MISSION_UNSUPPORTED)]
        items = self.lists[mtype]
        if self.flavour.mission_seq0_is_home and mtype == MISSION and seq == 0:
            item: Item | None = replace(self._home_item(), seq=0)
        else:
            item = items[seq] if 0 <= seq < len(items) else None
        if item is None:
            return [self._ack(partner, mtype, mav.MAV_MISSION_INVALID_SEQUENCE)]
        if as_int:
            return [
                mav.MAVLink_mission_item_int_message(
                    partner[0],
                    partner[1],
                    item.seq,
                    item.frame,
                    item.command,
                    item.current,
                    item.autocontinue,
                    item.param1,
                    item.param2,
                    item.param3,
                    item.param4,
                    item.x,
                    item.y,
                    item.z,
                    mtype,
                )
            ]
        frame = {
            mav.MAV_FRAME_GLOBAL_INT: mav.MAV_FRAME_GLOBAL,
            mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT: mav.MAV_FRAME_GLOBAL_RELATIVE_ALT,
            mav.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT: mav.MAV_FRAME_GLOBAL_TERRAIN_ALT,
        }.get(item.frame, item.frame)
        return [
            mav.MAVLink_mission_item_message(
                partner[0],
                partner[1],
                item.seq,
                frame,
                item.command,
                item.current,
                item.autocontinue,
                item.param1,
                item.param2,
                item.param3,
                item.param4,
                item.x / 1e7,
                item.y / 1e7,
                item.z,
                mtype,
            )
        ]

    def _ack(self, partner: tuple[int, int], mtype: int, result: int) -> mav.MAVLink_message:
        return mav.MAVLink_mission_ack_message(partner[0], partner[1], result, mtype)
