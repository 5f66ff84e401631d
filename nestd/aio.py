"""Small asyncio helpers."""

from __future__ import annotations

import asyncio


def check_cancelled() -> None:
    """Raise CancelledError if this task has a cancellation request it never received.

    On Python 3.11, `asyncio.wait_for` (which aiomqtt's publish uses) can swallow a
    cancellation that arrives as the awaited future completes. The task then runs on with
    `cancelling() > 0`, and a TaskGroup or shutdown waiting for it waits for ever. Loops that
    publish call this once per turn so a lost cancellation still ends them.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
