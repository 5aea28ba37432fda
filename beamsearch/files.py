"""Small file helpers every writer and reader of a run folder shares: atomic writes with the user's
umask, the one rule that keeps a path read from a run folder inside it, one-sentence reasons, shortened
paths and folder-safe names."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath

from beamsearch.errors import DiskFull, RunFolderError


def slug(text: str, limit: int = 48) -> str:
    """A folder-safe name: ASCII letters, digits and dashes only, bounded length, never empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", ascii_text).strip("-").lower()
    return cleaned[:limit].rstrip("-") or "run"


# --- confinement ----------------------------------------------------------------------------------


def outside_reason(folder: Path, relative: object) -> str | None:
    """Why `relative` (a path read from the run folder `folder`) does not name a file inside it, or None.

    A run folder is data someone else may have made: a path in its log is a relative POSIX path with no
    `..`, not absolute, not the folder itself, and it must still be inside the folder once every symlink
    on the way is followed. (A missing file is fine: it is redone.)"""
    if not isinstance(relative, str) or not relative:
        return "is not a file name"
    if "\x00" in relative or "\\" in relative:
        return "holds a character a path in a run folder never has"
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        return "is an absolute path"
    if ".." in pure.parts:
        return "climbs out of the run folder with '..'"
    root = Path(folder).resolve()
    try:
        target = (root / pure).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return "goes round a loop of symlinks"
    if target == root or not target.is_relative_to(root):
        return "leads outside the run folder (through a symlink)"
    return None


def confined(folder: Path, relative: object, where: str = "") -> Path:
    """The one rule for turning a path read from a run folder into a file path: the file inside `folder`
    that `relative` names, or a RunFolderError naming it (and `where` it was read, e.g. 'events.jsonl
    line 12'), so nothing outside the folder is ever read, written or uploaded."""
    problem = outside_reason(folder, relative)
    if problem is not None:
        origin = f" ({where})" if where else ""
        raise RunFolderError(f"The run folder {shown(folder)} names the file {shown(repr(relative), 80)}{origin}, which "
                             f"{problem}; nothing was read or written (a run folder may only name its own files).")
    return Path(folder) / PurePosixPath(str(relative))


# --- writing --------------------------------------------------------------------------------------


@functools.cache
def umask() -> int:
    """The process's umask, read once (os.umask can only be read by setting it, which is not safe while
    other threads create files, so Linux's /proc is asked first)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may take fewer bytes than it was given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part. The
    file gets the user's umask (mkstemp makes 0600, which breaks a shared or served folder). A full disk
    is a DiskFull error: the temp file is removed, the old file kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, 0o666 & ~umask())
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise DiskFull.writing(path, exc) from None
        raise


def shown(path: Path | str, limit: int = 160) -> str:
    """A path fit for a one-sentence message: an absurdly long one is shortened in the middle."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-(limit // 2 - 3):]}"


def reason(exc: BaseException) -> str:
    """What went wrong with a file, in words and without the Python class name."""
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).rstrip(".") or type(exc).__name__
