"""check_cancelled: a cancellation swallowed on the way (as Python 3.11's wait_for can) still
ends the loop that checks for it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from nestd.aio import check_cancelled


async def test_a_swallowed_cancellation_is_raised_at_the_next_check() -> None:
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            check_cancelled()
            turns += 1
            # What a buggy await does: the request is lost, cancelling() stays 1.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.03)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)
    assert turns >= 1


async def test_no_request_no_raise() -> None:
    check_cancelled()
