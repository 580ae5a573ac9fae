"""Cancellation points for background loops.

On Python 3.11 `asyncio.wait_for` swallows a cancel that arrives just as the awaited
operation completes (fixed in 3.12 by reimplementing it on `asyncio.timeout`). redis-py
sends every command inside `wait_for`, so a loop that talks to Redis can be cancelled,
never see it, and run on: a node that could not shut down, a show's origin claim that
outlived the show. The task still counts the request (`Task.cancelling()`), so a loop
that checks for it at the top of each turn stops at the next one.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop, even if that request
    was swallowed on the way; a no-op otherwise. Call it once per turn of a loop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
