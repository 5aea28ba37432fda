"""Text from models and run folders made inert before it reaches a terminal.

A prompt, a judge's note, an error body or a folder name can hold escape sequences (a screen clear, an
OSC title change or hyperlink, a C1 control), carriage returns that overwrite what was printed, or
bidirectional overrides that reorder it. Every command prints such text only through `safe` (or `line`
for one-line messages, or `json_safe` for `--json`), which shows each control character as a visible
escape (`\\x1b`, `\\u202e`) instead of letting the terminal act on it. Once ESC itself is visible, the
rest of a sequence is plain text.

Rich markup is the other half: rich reads `[bold]` and `[/nope]` in strings as markup, so displays hand
foreign text to rich as `rich.text.Text` objects built from `safe` text (`rich_text`), never as str.
This module imports nothing heavy: the command line uses it for every error message.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode controls that reorder or break
# lines (bidi embeddings, overrides and isolates, marks, line and paragraph separators).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What `json.dumps(..., ensure_ascii=False)` and pydantic leave raw: everything above but C0 (they
# escape C0 themselves). Inside JSON these characters can only occur in strings, where \\u escapes are valid.
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: Any) -> str:
    """`value` as text a terminal only displays: newlines and tabs kept (a CR LF pair becomes a newline),
    every other control character shown as its escape."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(_visible, text.replace("\r\n", "\n"))


def line(value: Any) -> str:
    """`safe` for a one-line message (an error, a warning, a plain progress line): a newline from
    foreign text is shown as `\\n`, so it cannot forge a line of its own."""
    return safe(value).replace("\n", "\\n")


def json_safe(dumped: str) -> str:
    """A JSON document or line with the characters JSON encoders leave raw (DEL, C1, bidi controls)
    written as \\u escapes: the same data, inert on a terminal."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def rich_text(value: Any, style: str = "") -> Any:
    """Foreign text for rich: a `Text` (never read as markup) of the `safe` text."""
    from rich.text import Text

    return Text(safe(value), style=style)
