"""beamsearch: beam search over WHAT/HOW prompt pairs to find the best image for an idea.

The public API is what this module exports; everything else is internal and may change::

    import asyncio, beamsearch

    settings = beamsearch.resolve(flags={"provider": "sim", "prompt": "a teal whale under a purple moon"})
    result = asyncio.run(beamsearch.start_run(settings))
    print(result.status, result.summary["best"]["id"], result.store.path)

`start_run` makes a new run folder and searches; `resume_run` replays a stopped run's log and carries
on; both return a `RunResult`. Failures a user can act on are `BeamsearchError`s with a one-sentence
`message` and the `exit_code` the CLI would use. Names are loaded on first use, so importing the package
(as `beamsearch --help` does) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "start_run": "beamsearch.app",
    "resume_run": "beamsearch.app",
    "RunResult": "beamsearch.app",
    "Settings": "beamsearch.config",
    "resolve": "beamsearch.precedence",
    "BeamsearchError": "beamsearch.errors",
    "SettingsError": "beamsearch.errors",
    "RunFolderError": "beamsearch.errors",
    "BudgetExhausted": "beamsearch.errors",
    "RunFailed": "beamsearch.errors",
    "Interrupted": "beamsearch.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'beamsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
