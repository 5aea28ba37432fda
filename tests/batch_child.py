"""The real command line in a child process, with every model call it asks written to a file first.

`python tests/batch_child.py CALLS_FILE <beamsearch arguments>`: each call appends one line,
`pid <TAB> idea <TAB> step key`, before the provider answers (one unbuffered O_APPEND write per line), so
the lines of a process killed with SIGKILL are all there. The providers are the ordinary ones (the
simulator here), wrapped where the app and the composition build them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from beamsearch import app, cli, compose
from beamsearch.providers.base import Providers


class Asked:
    """Writes down each call's step key, then passes it on."""

    def __init__(self, inner: Any, idea: str, fd: int) -> None:
        self.inner, self.idea, self.fd = inner, idea, fd

    def _note(self, key: str) -> None:
        os.write(self.fd, f"{os.getpid()}\t{self.idea}\t{key}\n".encode())

    async def complete(self, request: Any) -> Any:
        self._note(request.key)
        return await self.inner.complete(request)

    async def generate(self, request: Any) -> Any:
        self._note(request.key)
        return await self.inner.generate(request)

    async def judge(self, request: Any) -> Any:
        self._note(request.key)
        return await self.inner.judge(request)


def main() -> None:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    real = compose.build_providers

    def counted(settings: Any) -> Providers:
        inner = real(settings)
        wrap = Asked(inner.text, settings.prompt or "", fd)
        return Providers(text=wrap, image=Asked(inner.image, settings.prompt or "", fd),
                         vision=Asked(inner.vision, settings.prompt or "", fd), labels=inner.labels)

    app.build_providers = counted  # type: ignore[assignment] - new runs
    compose.build_providers = counted  # type: ignore[assignment] - resumed runs
    sys.argv = ["beamsearch", *sys.argv[2:]]
    cli.main()


if __name__ == "__main__":
    main()
