"""`report.html` while a run runs: rewritten at every ranking, so a run in progress can be looked at.

`LiveReport` is a listener of the session's events. On each `ranking` (logged before listeners hear
it) it asks its one worker thread to bring the page up to date; the event loop only hands the request
over, so no lane waits for a page to render. The worker reads the log itself, only the complete lines
appended since its last look (the log is append-only; a line still being written is left for next
time), folds them into its own view, and writes the page atomically. The lifecycle closes it (waiting for
a write in progress) before the final summary and report are written, so the last page is the final one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from beamsearch.eventlog import EVENTS_FILE, parse_log
from beamsearch.events import Event, Ranking
from beamsearch.files import reason
from beamsearch.summary import build_summary
from beamsearch.view import RunView


class LiveReport:
    """Rewrites the run's report.html after every ranking, in a worker thread."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.view = RunView()
        self.offset = 0
        self.writes = 0
        self.problem: str | None = None
        self._closed = self._warned = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beamsearch-report")

    def __call__(self, event: Event) -> None:
        if isinstance(event, Ranking) and not self._closed:
            self._worker.submit(self._refresh)

    def _catch_up(self) -> None:
        """Fold the complete lines appended to the log since the last look."""
        log = self.store.path / EVENTS_FILE
        with open(log, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for event in parse_log(complete, log).events:
            self.view.apply(event)
        self.offset += len(complete)

    def _refresh(self) -> None:
        from beamsearch.report import write_report

        try:
            self._catch_up()
            write_report(self.store, build_summary(self.store.read_run_file(), self.view))
            self.writes += 1
        except Exception as exc:  # a page that cannot be written mid-run never stops the run
            if self.problem is None:
                self.problem = getattr(exc, "message", None) or reason(exc)

    def close(self) -> None:
        """No more rewrites; wait for one in progress. A problem is kept as a warning of the run."""
        self._closed = True
        self._worker.shutdown(wait=True)
        if self.problem is not None and not self._warned:
            self._warned = True
            self.store.warnings.append(f"report.html could not be updated during the run: {self.problem.rstrip('.')}.")
