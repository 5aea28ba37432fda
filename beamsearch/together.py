"""Run a few awaitables side by side and wait for all of them, even when one fails.

`asyncio.gather` returns at the first failure and leaves the others running: a judge already paid for
would then finish after its lane was written off (or after the run was closed), unrecorded or recorded
late, and a resume would ask it again. And the failure it reports is whichever came first in time,
which a replay (where every answer is immediate) would not reproduce. `all_settled` waits for every
awaitable and raises the failure that counts, chosen by kind and then by argument order, never by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from beamsearch.errors import BeamsearchError, CallError


async def all_settled(*awaitables: Awaitable[Any]) -> list[Any]:
    """The results in argument order, once every awaitable has finished; or, if any failed, the failure
    that counts: a run-wide stop (budget, key) first, then anything unexpected, then the first call
    failure in argument order."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise min(failures, key=_rank)
    return results


def _rank(failure: BaseException) -> int:
    if isinstance(failure, BeamsearchError):
        return 0
    if not isinstance(failure, CallError):
        return 1
    return 2
