"""Write-behind batches: the queue a writer thread drains and commits in one transaction at a time."""

from __future__ import annotations

import queue
import time


def take_batch(source: queue.Queue, limit: int = 500, gather: float = 0.0) -> list:
    """Wait for one item, then take whatever else is queued, up to `limit`.

    `gather` > 0 sleeps that long after the first item, so more arrive before the commit: under load
    a writer that took only what was queued at that instant committed batches of one or two. A
    sleep, not a get with a timeout: a writer waiting on the queue is woken by every put, which cost
    the tile path 10% of its GIL time (Condition.notify)."""
    batch = [source.get()]
    if gather > 0:
        time.sleep(gather)
    while len(batch) < limit:
        try:
            batch.append(source.get_nowait())
        except queue.Empty:
            break
    return batch
