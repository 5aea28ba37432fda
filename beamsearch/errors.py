"""The error vocabulary shared by every layer.

Providers translate their own failures into these classes so that the gate can decide what to retry
without knowing which SDK raised what, and so the CLI can turn any of them into one clear sentence and
the right exit code.
"""

from __future__ import annotations

from typing import Any


class BeamsearchError(Exception):
    """A failure with a message fit for a user and the exit code it should end the program with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SettingsError(BeamsearchError):
    """Bad settings, bad usage or a bad input file: exit 2."""

    exit_code = 2


class RunFolderError(BeamsearchError):
    """A folder that is not a run, a corrupt log or a run that cannot be resumed as asked: exit 2."""

    exit_code = 2


class BudgetExhausted(BeamsearchError):
    """The configured budget was reached; the run is resumable: exit 3."""

    exit_code = 3


class RunFailed(BeamsearchError):
    """Too few lanes of an iteration succeeded to go on; the run is resumable: exit 1."""

    exit_code = 1


class DiskFull(BeamsearchError):
    """The disk (or the user's quota) is full: nothing half-written is kept, the run is resumable: exit 1."""

    exit_code = 1

    @classmethod
    def writing(cls, path: Any, exc: OSError) -> DiskFull:
        from beamsearch.files import reason, shown

        return cls(f"The disk is full: {shown(path)} cannot be written ({reason(exc)}); what was recorded is kept, "
                   "so free some space and resume the run.")


class Interrupted(BeamsearchError):
    """The user pressed Ctrl-C; the run is resumable: exit 130."""

    exit_code = 130


# --- failures of one model call -------------------------------------------------------------------


class CallError(Exception):
    """One attempt of one model call failed. Subclasses say whether another attempt may succeed.

    `usage` is what the failed attempt consumed when an answer did arrive (a picture that does not decode,
    text that is not the JSON asked for): that answer was paid for, so the gate counts it (a
    `providers.base.Usage`, or None when nothing was answered)."""

    retryable = False

    def __init__(self, message: str, *, usage: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class RetryableError(CallError):
    """A transient failure (429, 5xx, timeout, connection, malformed body): try again after a pause.

    `retry_after` is the server's advice in seconds, when it gave one. `pause_service` asks the gate to
    hold every call of the same service for that long, so that lanes back off together after a 429.
    `ratelimit` is the server's rate-limit advice sent with the failure (a `ratelimit.RateAdvice`), if any.
    """

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None, pause_service: bool = False,
                 ratelimit: Any = None, *, usage: Any = None) -> None:
        super().__init__(message, usage=usage)
        self.retry_after = retry_after
        self.pause_service = pause_service
        self.ratelimit = ratelimit


class InvalidAnswer(RetryableError):
    """The model answered, but the answer does not parse or does not fit its schema."""


class AnswerCutOff(InvalidAnswer):
    """The answer was cut off by the length limit (`finish_reason: length`) before it held anything usable.
    `grow`: the retry may ask for more tokens (nothing was said at all, or a JSON answer was cut), as
    opposed to a rambling answer that more tokens would only make longer."""

    def __init__(self, message: str, *, grow: bool = True, usage: Any = None) -> None:
        super().__init__(message, usage=usage)
        self.grow = grow


class FatalCallError(CallError):
    """A failure that another attempt cannot fix (400, 401, 403, 404, quota): stop this call at once."""


class AuthError(FatalCallError):
    """The service rejected the key; ends the run because every later call would fail the same way."""


class ContentPolicyError(CallError):
    """The image prompt was refused for policy: the step rephrases it rather than retrying it verbatim."""


class StepFailed(CallError):
    """A call that still failed after every allowed attempt, or failed in a way no attempt can fix."""


def paid(exc: BaseException, usage: Any) -> BaseException:
    """`exc` marked with the usage of the answer it threw away (unless it already carries one), so the
    gate counts that answer's cost; returns `exc` for `raise paid(exc, usage)`."""
    if usage is not None and getattr(exc, "usage", None) is None:
        exc.usage = usage  # type: ignore[attr-defined]
    return exc
