"""What every sans-io transaction looks like to the asyncio layer that drives it."""

from __future__ import annotations

from typing import Any, Protocol

# A pymavlink message object (pymavlink is untyped). Outgoing messages carry their target
# system/component in their own fields; the link packs them with the daemon's identity.
Message = Any


class Transaction(Protocol):
    """One protocol exchange with one vehicle component.

    The driver calls `start(now)` once, then `on_message(msg, now)` for every message from
    that vehicle and `on_timer(now)` whenever `deadline_s` passes, sending whatever each
    returns, until `done` is true; then it reads the transaction's result. Nothing here
    touches a socket or a clock.
    """

    @property
    def done(self) -> bool: ...

    @property
    def deadline_s(self) -> float | None:
        """When `on_timer` must next be called (None: not waiting on time)."""
        ...

    def start(self, now_s: float) -> list[Message]: ...

    def on_message(self, msg: Message, now_s: float) -> list[Message]: ...

    def on_timer(self, now_s: float) -> list[Message]: ...
