"""The bounded pool that does a run's picture work off the event loop: checking, digesting, labelling
and writing each image, and making its vision input.

Why a pool of its own, as wide as the machine has cores: the lanes of an iteration finish their images
together, and asyncio's default executor (cores + 4 threads) would start all of them at once. Pillow and
zlib release the GIL while they decode and encode, so two threads on two cores do the work as fast as
six, but six make the event loop wait behind them for the GIL (measured: the longest late tick of the
loop was 4 ms with 2 threads and 128 ms with 6, for the same 18 shrinks). A process pool would free the
loop entirely but pickles every picture across (about 1.5 MB each) and was slower than 2 threads.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def cores() -> int:
    """The cores this process may run on (a container's share, where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pool() -> ThreadPoolExecutor:
    """The process's one picture pool, made on first use (a batch of runs shares it, as it shares
    limiters)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="beamsearch-pictures")
        return _pool


async def run(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in the picture pool, awaited without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(pool(), functools.partial(work, *args))
