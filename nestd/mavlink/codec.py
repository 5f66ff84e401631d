"""MAVLink framing: pymavlink's ardupilotmega dialect (MAVLink 2, MAVLink 1 accepted on receive)."""

from __future__ import annotations

from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mav

Message = Any


class Decoder:
    """Frames messages from one source: a datagram peer (each read whole) or a serial stream."""

    def __init__(self, datagram: bool) -> None:
        self.datagram = datagram
        self._mav = mav.MAVLink(None)
        self._mav.robust_parsing = True
        self.bad_frames = 0
        self.unknown_ids = 0

    def feed(self, data: bytes) -> list[Message]:
        p = self._mav
        try:
            msgs = p.parse_buffer(data) or []
        except Exception:  # pymavlink raises on a few malformed inputs even when robust
            msgs = []
            self.bad_frames += 1
            self._reset()
        if self.datagram:
            # A datagram carries whole frames: a truncated one must not swallow the next.
            self._reset()
        good: list[Message] = []
        for m in msgs:
            t = m.get_type()
            if t == "BAD_DATA":
                self.bad_frames += 1
            elif t.startswith("UNKNOWN"):
                self.unknown_ids += 1
            else:
                good.append(m)
        return good

    def _reset(self) -> None:
        p = self._mav
        p.buf = bytearray()
        p.buf_index = 0
        p.expected_length = mav.HEADER_LEN_V1 + 2
        p.have_prefix_error = False


class Encoder:
    """Packs messages as (sysid, compid) with one sequence counter, optionally signed."""

    def __init__(self, sysid: int, compid: int) -> None:
        self._mav = mav.MAVLink(None, sysid, compid)

    @property
    def mav(self) -> Any:
        return self._mav

    def pack(self, msg: Message) -> bytes:
        return bytes(msg.pack(self._mav))
