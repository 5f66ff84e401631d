"""Link health per vehicle: silence, packet loss from sequence numbers, latency from TIMESYNC."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class LinkEvent(enum.Enum):
    LOST = "link_lost"
    RESTORED = "link_restored"


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    alive: bool
    silent_s: float
    loss_ratio: float  # over the recent window, from sequence gaps
    rtt_s: float | None  # TIMESYNC round trip, smoothed
    received: int
    lost: int
    duplicates: int


class LinkHealth:
    """Fed every message from one vehicle (with its sequence number) and the time."""

    def __init__(self, lost_after_s: float = 3.0, window_s: float = 10.0) -> None:
        self.lost_after_s = lost_after_s
        self.window_s = window_s
        self.alive = False
        self.last_heard_s: float | None = None
        self._last_seq: dict[int, int] = {}  # per source component
        self._buckets: deque[tuple[int, int, int]] = deque()  # (second, received, lost)
        self.received = 0
        self.lost = 0
        self.duplicates = 0
        self.rtt_s: float | None = None

    def on_message(self, compid: int, seq: int, now_s: float) -> LinkEvent | None:
        self.received += 1
        lost_now = 0
        last = self._last_seq.get(compid)
        if last is not None:
            gap = (seq - last - 1) & 0xFF
            if gap == 255:  # the same sequence number again
                self.duplicates += 1
            elif gap < 128:
                lost_now = gap
            # a large gap is a reorder or a restart: don't count it as loss
        self._last_seq[compid] = seq
        self.lost += lost_now
        sec = int(now_s)
        if self._buckets and self._buckets[-1][0] == sec:
            _, r, lo = self._buckets[-1]
            self._buckets[-1] = (sec, r + 1, lo + lost_now)
        else:
            self._buckets.append((sec, 1, lost_now))
        while self._buckets and self._buckets[0][0] <= sec - self.window_s:
            self._buckets.popleft()
        self.last_heard_s = now_s
        if not self.alive:
            self.alive = True
            return LinkEvent.RESTORED
        return None

    def on_timer(self, now_s: float) -> LinkEvent | None:
        if self.alive and self.last_heard_s is not None and (
            now_s - self.last_heard_s > self.lost_after_s
        ):
            self.alive = False
            self._last_seq.clear()  # after an outage the sequence restarts anywhere
            return LinkEvent.LOST
        return None

    def on_rtt(self, rtt_s: float) -> None:
        if rtt_s < 0:
            return
        self.rtt_s = rtt_s if self.rtt_s is None else 0.8 * self.rtt_s + 0.2 * rtt_s

    def loss_ratio(self) -> float:
        r = sum(b[1] for b in self._buckets)
        lo = sum(b[2] for b in self._buckets)
        return lo / (r + lo) if r + lo else 0.0

    def snapshot(self, now_s: float) -> HealthSnapshot:
        silent = now_s - self.last_heard_s if self.last_heard_s is not None else float("inf")
        return HealthSnapshot(self.alive, silent, self.loss_ratio(), self.rtt_s, self.received,
                              self.lost, self.duplicates)
