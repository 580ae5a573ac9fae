"""A background loop stops when cancelled, even if asyncio.wait_for swallowed the cancel."""

from __future__ import annotations

import asyncio

from web.cancellation import raise_if_cancelled


async def test_a_loop_stops_at_its_next_turn_when_wait_for_swallowed_the_cancel():
    loop = asyncio.get_running_loop()
    waits: list[asyncio.Future] = []
    turns = 0

    async def background() -> None:
        nonlocal turns
        while True:
            raise_if_cancelled()
            turns += 1
            waits.append(loop.create_future())
            await asyncio.wait_for(waits[-1], 30)  # as redis-py sends each command

    task = asyncio.create_task(background())
    await asyncio.sleep(0)
    # The awaited operation completes and the cancel arrives in the same turn of the
    # event loop: Python 3.11's wait_for returns the result and drops the cancel.
    waits[-1].set_result(None)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task} and task.cancelled()
    assert turns == 1  # it did not start another wait


async def test_outside_a_cancelled_task_it_does_nothing():
    raise_if_cancelled()  # the test's own task was never cancelled
