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
        if self.datagram:
            return self._feed_datagram(data)
        return self._feed_stream(data)

    def _feed_datagram(self, data: bytes) -> list[Message]:
        """Frame by the length byte and decode each frame directly: a third cheaper than
        pymavlink's byte-at-a-time parser, and a datagram never holds half a frame."""
        out: list[Message] = []
        i, n = 0, len(data)
        decode = self._mav.decode
        while i < n:
            marker = data[i]
            if marker == 0xFD and n - i >= 12:
                flen = 12 + data[i + 1] + (13 if data[i + 2] & mav.MAVLINK_IFLAG_SIGNED else 0)
            elif marker == 0xFE and n - i >= 8:
                flen = 8 + data[i + 1]
            else:
                self.bad_frames += 1  # garbage, or a frame cut short: the rest is unusable
                break
            if i + flen > n:
                self.bad_frames += 1
                break
            try:
                m = decode(bytearray(data[i : i + flen]))
            except Exception:  # MAVError on a bad CRC/length, struct.error on junk
                self.bad_frames += 1
                i += flen
                continue
            i += flen
            if m.get_type().startswith("UNKNOWN"):
                self.unknown_ids += 1
            else:
                out.append(m)
        return out

    def _feed_stream(self, data: bytes) -> list[Message]:
        p = self._mav
        try:
            msgs = p.parse_buffer(data) or []
        except Exception:  # pymavlink raises on a few malformed inputs even when robust
            msgs = []
            self.bad_frames += 1
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
