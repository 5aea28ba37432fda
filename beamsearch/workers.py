"""The bounded pool that does a run's picture work off the event loop: checking, digesting, labelling
and writing each image, and making its vision input.

Why a pool of its own, as wide as the machine has cores: the lanes of an iteration finish their images
together, and asyncio's default executor (cores + 4 threads) would start all of their work at once,
more threads than there are cores to run them. Pillow and zlib release the GIL while they decode,
resize and encode, so threads use every core. Measured on this 2-core machine (shared with other
work that kept about one core busy; 18 shrinks of a photo-weight 1024 px PNG at once, medians of 7):
1, 2 and 6 threads took 0.48, 0.48 and 0.50 s, and delayed the event loop's 2 ms ticks by 64, 226 and
165 ms in all; a process pool of 2 took 0.46 s and 56 ms, but it pickles every picture across and its
CPU is spent outside the process. In whole runs over loopback HTTP (the real-path benchmark, 3 seeds)
1 and 2 threads were within the noise of each other (span 1.14x and 1.17x the bound). With no width
measurably better, the pool is as wide as the cores, so a quiet machine uses all of them.
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
