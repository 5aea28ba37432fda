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


class Interrupted(BeamsearchError):
    """The user pressed Ctrl-C; the run is resumable: exit 130."""

    exit_code = 130


# --- failures of one model call -------------------------------------------------------------------


class CallError(Exception):
    """One attempt of one model call failed. Subclasses say whether another attempt may succeed."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(CallError):
    """A transient failure (429, 5xx, timeout, connection, malformed body): try again after a pause.

    `retry_after` is the server's advice in seconds, when it gave one. `pause_service` asks the gate to
    hold every call of the same service for that long, so that lanes back off together after a 429.
    `ratelimit` is the server's rate-limit advice sent with the failure (a `ratelimit.RateAdvice`), if any.
    """

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None, pause_service: bool = False,
                 ratelimit: Any = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.pause_service = pause_service
        self.ratelimit = ratelimit


class InvalidAnswer(RetryableError):
    """The model answered, but the answer does not parse or does not fit its schema."""


class FatalCallError(CallError):
    """A failure that another attempt cannot fix (400, 401, 403, 404, quota): stop this call at once."""


class AuthError(FatalCallError):
    """The service rejected the key; ends the run because every later call would fail the same way."""


class ContentPolicyError(CallError):
    """The image prompt was refused for policy: the step rephrases it rather than retrying it verbatim."""


class StepFailed(CallError):
    """A call that still failed after every allowed attempt, or failed in a way no attempt can fix."""
