"""Which files the web view may serve: names checked, paths resolved and confined.

A run folder is data, not instructions (DESIGN.md section 9): its events name images, and a page asks
for them by name. A name is accepted only if it looks like one beamsearch writes; the resolved path
(symlinks followed) must stay inside the run folder, which must itself resolve to a folder directly
inside the runs folder. Anything else is refused, never served.

A batch folder is such a folder too (it has a batch.yaml), and each of its ideas' runs is a run folder
directly inside it: the same rules, one level down. What its batch.jsonl names never picks a path; a
page asks for an idea's folder by name and the name is checked here like any other.
"""

from __future__ import annotations

import re
from pathlib import Path

from beamsearch.batch_store import is_batch

# A run folder's name as `RunStore.create` makes it (a time stamp and a slug), with some slack for
# folders renamed by hand; never a path separator, never a leading dot, so never "." or "..".
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# An image file inside images/: a candidate id and the extension of a format beamsearch writes.
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.(png|jpg|jpeg|webp)")
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


def valid_run_name(name: str) -> bool:
    return bool(RUN_NAME.fullmatch(name)) and ".." not in name


def valid_image_name(name: str) -> bool:
    return bool(IMAGE_NAME.fullmatch(name))


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


def run_folder(runs_dir: Path, name: str) -> Path | None:
    """The run folder `name` inside `runs_dir`, resolved; None if the name is not a run's or the folder
    (through a symlink, say) lies anywhere but directly inside the runs folder."""
    if not valid_run_name(name):
        return None
    try:
        root = Path(runs_dir).resolve(strict=True)
        folder = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None
    if folder.parent != root or not folder.is_dir():
        return None
    return folder


def batch_folder(runs_dir: Path, name: str) -> Path | None:
    """The batch folder `name` inside `runs_dir`, resolved and confined as a run folder is; None if it
    is not one (or is not a batch)."""
    folder = run_folder(runs_dir, name)
    return folder if folder is not None and is_batch(folder) else None


def idea_folder(runs_dir: Path, batch: str, idea: str) -> Path | None:
    """The run folder `idea` of batch `batch`: directly inside the batch folder, which is directly inside
    `runs_dir` (each resolved, symlinks followed); None for anything else."""
    folder = batch_folder(runs_dir, batch)
    return None if folder is None else run_folder(folder, idea)


def image_file(runs_dir: Path, name: str, file: str) -> Path | None:
    """The image `images/<file>` of run `name`, resolved and confined to that run folder; None for any
    name or path that is refused (so the caller answers 404 and says no more)."""
    folder = run_folder(runs_dir, name)
    return None if folder is None else image_in(folder, file)


def image_in(folder: Path, file: str) -> Path | None:
    """The image `images/<file>` of a run folder already checked, confined to it; None if refused."""
    if not valid_image_name(file):
        return None
    try:
        path = (folder / "images" / file).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not _inside(path, folder) or not path.is_file() or path.suffix.lstrip(".").lower() not in IMAGE_TYPES:
        return None  # a symlink to the run's other files is not an image either
    return path


def media_type(path: Path) -> str:
    return IMAGE_TYPES.get(path.suffix.lstrip(".").lower(), "application/octet-stream")
