"""How the command line behaves as a program, apart from what its commands do (`cli`).

* Errors are one line. A flag error (a bad value, an unknown option, a missing argument) is one
  sentence naming the flag and where help is, exit 2; anything a command raises goes through `fail`:
  the error's own sentence and exit code, or "internal error: ..." for a bug; a traceback only with
  `--debug`, which may stand anywhere on the command line (before or after the command).
* Help is conventional: `-h` as well as `--help`, the usage line names arguments by their metavar
  (`RUN_DIR`), flags have no `<bool>` placeholder, and options that are settings show the settings'
  own default (read from `config.Settings` only when that help is shown, so `beamsearch --help` stays fast).
* A settings error caused by a flag names the flag (`--max-cost`), not the setting (`max_cost_usd`).

Everything printed here passes through `terminal.line`: messages quote folder and model text.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from beamsearch.terminal import line

# Option parameter -> the setting it sets. A one-letter option is `-x`, any other `--name-with-dashes`.
SETTING_OF = {"n": "n", "m": "m", "iterations": "iterations", "alpha": "alpha", "provider": "provider",
              "runs_dir": "runs_dir", "max_cost": "max_cost_usd", "seed": "seed", "prompt": "prompt",
              "alignment": "alignment", "ranking": "ranking", "judge_samples": "judge_samples"}

_state = {"debug": False}


def flag_of(param: str) -> str:
    return f"-{param}" if len(param) == 1 else "--" + param.replace("_", "-")


def settings_flags(values: dict[str, Any]) -> dict[str, Any]:
    """A command's options as settings keys; options that are not settings and options not given are left out."""
    return {SETTING_OF[k]: v for k, v in values.items() if k in SETTING_OF and v is not None}


@contextlib.contextmanager
def naming_flags(flags: dict[str, Any]) -> Iterator[None]:
    """A settings error about a key the user gave as a flag names the flag: `--max-cost must be greater
    than 0 (got -1.0).`, not `Setting 'max_cost_usd' ...`."""
    from beamsearch.errors import SettingsError

    try:
        yield
    except SettingsError as exc:
        message = exc.message
        for param, key in SETTING_OF.items():
            if key in flags:
                flag = flag_of(param)
                message = re.sub(rf"Setting '{re.escape(key)}' (?:input )?", f"{flag} ", message)
                message = message.replace(f"'{key}'", flag)
        if message == exc.message:
            raise
        raise SettingsError(message) from None


def fail(exc: BaseException, code: int | None = None) -> None:
    """Print one clear sentence (a traceback only with --debug) and exit with the error's code. Anything
    that is not a BeamsearchError is a bug, and is called one."""
    from beamsearch.errors import BeamsearchError

    if isinstance(exc, BrokenPipeError) and not _state["debug"]:  # `beamsearch list | head`: the reader left
        quiet_stdout()
        raise typer.Exit(1)
    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, BeamsearchError):
        message = exc.message
    else:
        detail = " ".join(str(exc).split())
        message = f"internal error: {type(exc).__name__}{': ' + detail if detail else ''}"
        if not _state["debug"]:
            message += " (run with --debug for the traceback)"
    typer.echo(f"Error: {line(message)}", err=True)
    raise typer.Exit(code if code is not None else getattr(exc, "exit_code", 1))


def quiet_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone, so the interpreter's last flush has nowhere to fail
    and nothing is said: the reader asked for no more (as `rich`'s own output already behaves)."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """The safety net of every command: any exception that escapes it becomes one line and exit code 1
    (or the error's own code); typer's own exits pass, and so does Ctrl-C (see `cli.main`)."""
    from typer.exceptions import Abort, Exit, TyperException

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (Exit, Abort, TyperException):
            raise
        except Exception as exc:
            fail(exc)

    return wrapper


# --- help --------------------------------------------------------------------------------------------


def _setting_default(key: str) -> str:
    from beamsearch.config import Settings

    value = Settings.model_fields[key].default
    return "none" if value is None else str(value)


def _for_help(param: Any) -> Any:
    """A copy of `param` as help shows it: no placeholder on a flag, the setting's default on an option
    that sets one, a default given as words shown as such (not in parentheses)."""
    shown = copy.copy(param)
    if getattr(shown, "is_flag", False):
        shown.metavar = ""
    if isinstance(shown.show_default, str):
        shown.default, shown.show_default = shown.show_default, True
    elif shown.name in SETTING_OF and shown.name != "prompt" and shown.default is None:
        shown.default, shown.show_default = _setting_default(SETTING_OF[shown.name]), True
    return shown


def _plain_help_option(option: Any) -> Any:
    if option is not None:
        option.metavar = ""
    return option


@contextlib.contextmanager
def _shown_for_help(command: Any) -> Iterator[None]:
    """`command`'s options as help shows them (`_for_help`) while its help is written, then as they were:
    for every command and for the program itself."""
    originals = command.params
    command.params = [_for_help(p) for p in originals]
    try:
        yield
    finally:
        command.params = originals


class Command(TyperCommand):
    """A command whose usage line and help look like a conventional command line's."""

    def get_help_option(self, ctx: Any) -> Any:
        return _plain_help_option(super().get_help_option(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _shown_for_help(self):
            super().format_help(ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces



# --- the program -------------------------------------------------------------------------------------


def _value_options(command: Any) -> set[str]:
    """The option names of `command` that take a value (the next word is that value, never a flag)."""
    return {name for p in getattr(command, "params", []) if p.param_type_name == "option" and not p.is_flag
            for name in (*p.opts, *p.secondary_opts)}


def take_debug(args: Sequence[str], commands: dict[str, Any]) -> tuple[list[str], bool]:
    """`args` without `--debug` (anywhere before `--`, unless it is the value of an option), and whether it was there."""
    kept: list[str] = []
    found, command, takes_value = False, None, False
    for i, word in enumerate(args):
        if word == "--":
            kept.extend(args[i:])
            break
        if takes_value:
            kept.append(word)
            takes_value = False
            continue
        if word == "--debug":
            found = True
            continue
        kept.append(word)
        if command is None and not word.startswith("-"):
            command = commands.get(word)
        elif command is not None:
            takes_value = word in _value_options(command)
    return kept, found


def usage_line(exc: Any) -> str:
    """A flag error as one line: what is wrong and where the help is."""
    message = " ".join(str(exc.format_message()).split()).replace("Value error, ", "").rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = f"; see: {ctx.command_path} -h" if ctx is not None else ""
    return f"Error: {line(message)}{where}."


class Group(TyperGroup):
    """The `beamsearch` program: `--debug` anywhere, one-line errors, conventional help."""

    def get_help_option(self, ctx: Any) -> Any:
        return _plain_help_option(super().get_help_option(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _shown_for_help(self):
            super().format_help(ctx, formatter)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if type(command) is TyperCommand:  # a command declared without cls=Command gets its help too
                command.__class__ = Command

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        from typer.exceptions import Abort, TyperException

        words, _state["debug"] = take_debug(sys.argv[1:] if args is None else list(args), self.commands)
        try:
            result = super().main(words, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `beamsearch` alone: the help, as bad usage
                typer.echo(exc.format_message(), err=True)
            else:
                typer.echo(usage_line(exc), err=True)
            code = getattr(exc, "exit_code", 2)
        except Abort:
            typer.echo("Aborted.", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)
