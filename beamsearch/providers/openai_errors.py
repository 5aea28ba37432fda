"""Translate what the OpenAI SDK (and the HTTP stack under it) raises into beamsearch's error vocabulary.

The gate decides what to retry from the class of the error alone, so this table is where retry policy
for real services is really set: 429 (but not an exhausted quota), 408, 409, 5xx, timeouts, lost
connections and malformed bodies are transient; 400, 403 and 404 are not; 401 ends the run. A 429
carries the server's rate-limit headers on the error (`RetryableError.ratelimit`). Every message passes
through `redact` (before any truncation), because servers echo (parts of) keys back in their error
texts. A malformed 200 body was an answer all the same: it is billed as a typical call.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from typing import Any

import httpx2
import openai
import pydantic

from beamsearch.costs import typical_usage
from beamsearch.errors import (
    AuthError,
    CallError,
    ContentPolicyError,
    FatalCallError,
    InvalidAnswer,
    RetryableError,
)
from beamsearch.providers.bounded import AnswerTooLarge
from beamsearch.ratelimit import advice_from_headers

POLICY_CODES = {"content_policy_violation", "moderation_blocked", "content_filter", "safety_violation",
                "image_generation_user_error"}
POLICY_WORDS = ("content policy", "safety system", "moderation", "content_policy", "safety_violations")
KEY_PATTERN = re.compile(r"\b(sk|pk|key)-[A-Za-z0-9_\-*]{6,}")
BEARER_PATTERN = re.compile(r"(?i)\bbearer\s+\S+")
# a long run of key characters mixing letters and digits: a key of any vendor's shape (or a request id,
# which an error message can spare)
TOKEN_PATTERN = re.compile(r"(?<![A-Za-z0-9_\-])(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{32,}")
MAX_DETAIL = 240
SECRETS: set[str] = set()  # every key value in use by this process's roles (see ErrorMapper)


def redact(text: str, secret: str | None = None) -> str:
    """Remove every key in use (the exact values), and anything that looks like one (a masked
    `sk-abc***xyz`, a bearer token, a long random token), from a message. Done before any truncation,
    so a key cut in half by it is never half shown."""
    for value in sorted({secret, *SECRETS} - {None, ""}, key=len, reverse=True):  # type: ignore[arg-type]
        text = text.replace(value, "[redacted]")
    text = KEY_PATTERN.sub("[redacted]", text)
    text = BEARER_PATTERN.sub("Bearer [redacted]", text)
    return TOKEN_PATTERN.sub("[redacted]", text)


def retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms` first, then `retry-after` (seconds or a date)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    value = headers.get("retry-after")
    if value:
        try:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def server_detail(exc: openai.APIStatusError) -> str:
    """The server's own explanation, short and on one line (never the raw body: it may be huge)."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        message = str(getattr(exc, "message", "") or "")
    message = redact(" ".join(message.split()))  # before the cut: a key straddling it is never half kept
    return message[:MAX_DETAIL] + ("..." if len(message) > MAX_DETAIL else "")


def error_code(exc: openai.APIStatusError) -> str:
    """The machine-readable code (`insufficient_quota`, `content_policy_violation`, ...), lower-cased."""
    body = exc.body if isinstance(exc.body, dict) else {}
    parts = [exc.code, body.get("code"), body.get("type"), getattr(exc, "type", None)]
    return " ".join(str(p).lower() for p in parts if p)


REJECTION_WORDS = ("unsupported", "not supported", "unrecognized", "unknown", "does not support", "not permitted",
                   "not allowed", "invalid parameter", "unexpected keyword", "extra inputs")


def rejected_parameter(exc: BaseException, sent: set[str]) -> str | None:
    """Which of the optional parameters we `sent` a 400 says this model does not take, if any.

    Servers word this differently ("Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens'
    instead", "Unrecognized request argument supplied: max_completion_tokens"); since only one of a
    renamed pair is ever sent, the name of a parameter we sent appearing in the refusal is enough."""
    if not isinstance(exc, openai.BadRequestError):
        return None
    if exc.param in sent:
        return exc.param
    detail = server_detail(exc).lower()
    if "unsupported_parameter" not in error_code(exc) and "unsupported_value" not in error_code(exc) \
            and not any(word in detail for word in REJECTION_WORDS):
        return None
    for name in sorted(sent, key=len, reverse=True):
        if name in detail:
            return name
    return None


def rejected_keyword(exc: BaseException, used: set[str]) -> str | None:
    """Which of the JSON-schema keywords `used` in the schema we sent a 400 refuses, if any.

    OpenAI's strict structured outputs word it "Invalid schema for response_format 'x': In context=(...),
    'maxLength' is not permitted"; other servers "unsupported keyword: minimum". A refusal of the schema
    (its `param` is response_format, or its message speaks of a schema) that names a keyword we used is
    enough; keywords are matched as whole words (`minimum` is not found inside `exclusiveMinimum`)."""
    if not isinstance(exc, openai.BadRequestError) or not used:
        return None
    detail = server_detail(exc)
    if exc.param != "response_format" and "schema" not in detail.lower() and "keyword" not in detail.lower():
        return None
    for name in sorted(used, key=len, reverse=True):
        if re.search(rf"(?<![A-Za-z]){re.escape(name)}(?![A-Za-z])", detail, re.IGNORECASE):
            return name
    return None


def is_policy_refusal(exc: openai.APIStatusError) -> bool:
    code = error_code(exc)
    if any(c in code for c in POLICY_CODES):
        return True
    detail = server_detail(exc).lower()
    return any(word in detail for word in POLICY_WORDS)


class ErrorMapper:
    """Maps failures of one role's calls; knows the role, model, endpoint and key variable for messages."""

    def __init__(self, role: str, model: str, base_url: str | None, key_env: str, secret: str) -> None:
        self.role = role
        self.model = model
        self.where = base_url or "the OpenAI API"
        self.key_env = key_env
        self._secret = secret
        if secret:
            SECRETS.add(secret)

    def _clean(self, text: str) -> str:
        return redact(text, self._secret)

    def map(self, exc: BaseException) -> CallError:
        """The CallError that stands for `exc`; the caller raises it `from None` (no SDK chain in logs)."""
        if isinstance(exc, CallError):
            return exc
        if isinstance(exc, AnswerTooLarge):  # never read whole: what it cost is not known, so bill a typical call
            return FatalCallError(f"the {self.role} service at {exc.host} sent an answer larger than {exc.cap} bytes; "
                                  "it was cut off", usage=typical_usage(self.role, self.model))
        if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
            return RetryableError(f"the {self.role} request to {self.where} timed out")
        if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
            return RetryableError(f"cannot reach the {self.role} service at {self.where} (connection failed)")
        if isinstance(exc, openai.APIResponseValidationError):
            return InvalidAnswer(f"the {self.role} service sent a body that is not a valid answer",
                                 usage=typical_usage(self.role, self.model))
        if isinstance(exc, openai.APIStatusError):
            return self._status(exc)
        if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError | UnicodeDecodeError):
            return InvalidAnswer(f"the {self.role} service sent a malformed body ({type(exc).__name__})",
                                 usage=typical_usage(self.role, self.model))  # an answer arrived: never free
        if isinstance(exc, openai.OpenAIError):
            return FatalCallError(self._clean(f"the {self.role} call failed: {type(exc).__name__}: {exc}"))
        raise TypeError(f"not a call failure: {type(exc).__name__}")

    def _status(self, exc: openai.APIStatusError) -> CallError:
        status = exc.status_code
        detail = self._clean(server_detail(exc))
        code = error_code(exc)
        model = self.model
        if status == 401 and not self._secret:
            return AuthError(f"The {self.role} service at {self.where} asks for an API key (401 Unauthorized) and none "
                             "was sent: set api_key_env to the environment variable that holds it.")
        if status == 401:
            return AuthError(
                f"The {self.role} service at {self.where} rejected the API key from the environment variable "
                f"{self.key_env} (401 Unauthorized); check that variable, or try the offline simulator with --provider sim."
            )
        if status == 429:
            if "insufficient_quota" in code or "exceeded your current quota" in detail.lower():
                return FatalCallError(
                    f"The {self.role} service says the account behind {self.key_env} has no quota left (429 insufficient_quota); "
                    "add credit or use another key."
                )
            headers = exc.response.headers
            return RetryableError(f"the {self.role} service is rate limiting us (429)", retry_after=retry_after(headers),
                                  pause_service=True, ratelimit=advice_from_headers(headers, time.monotonic()))
        if status in (408, 409) or status >= 500:
            wait = retry_after(exc.response.headers)
            return RetryableError(f"the {self.role} service answered {status}: {detail}", retry_after=wait)
        if status == 400 and self.role == "image" and is_policy_refusal(exc):
            return ContentPolicyError(f"the image service refused the prompt for content policy: {detail}")
        if status == 403:
            return FatalCallError(f"The {self.role} service refused access to the model '{model}' (403 Forbidden): {detail}")
        if status == 404:
            return FatalCallError(
                f"The {self.role} service at {self.where} does not know the model '{model}' or its endpoint (404 Not Found): {detail}"
            )
        return FatalCallError(f"The {self.role} service rejected the request to '{model}' ({status}): {detail}")
