"""Writing a file so that a reader never sees half of it and a failure leaves nothing behind."""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"  # what write_atomically's temporary files end with


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, swapped in at once.

    Only a regular file is replaced: a symlink, a directory, a FIFO or a device at ``path``
    raises :class:`FileExistsError` and is left as it is. The temporary file
    (``.NAME.XXXX.tmp``) is removed on any failure, a full disk included; ``mode`` sets the
    file's permissions (``mkstemp`` makes it private). Raises :class:`OSError`.
    """
    temporary: str | None = None
    try:
        refuse_unless_regular(path)
        above = next(parent for parent in path.absolute().parents if parent.exists())
        if not above.is_dir():
            raise NotADirectoryError(20, f"{above} is a file, not a folder", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent
        )
        if mode is not None:
            os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
        temporary = None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def refuse_unless_regular(path: Path) -> None:
    """Raise :class:`FileExistsError` if something other than a regular file is at ``path``."""
    try:
        found = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (yet) to leave alone
        return
    if stat.S_ISREG(found):
        return
    raise FileExistsError(
        17, f"it is {_kind(found)}, not a regular file, and was left as it is", str(path)
    )


def _kind(found: int) -> str:
    if stat.S_ISLNK(found):
        return "a symlink"
    if stat.S_ISDIR(found):
        return "a directory"
    if stat.S_ISFIFO(found):
        return "a FIFO"
    if stat.S_ISCHR(found) or stat.S_ISBLK(found):
        return "a device"
    if stat.S_ISSOCK(found):
        return "a socket"
    return "a special file"


def remove_leftovers(path: Path) -> None:
    """Remove temporary files of ``path`` that an earlier, killed writer left beside it.

    Only safe while no other writer of ``path`` is at work (under its lock).
    """
    with contextlib.suppress(OSError):
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{TEMPORARY_SUFFIX}"):
            with contextlib.suppress(OSError):
                leftover.unlink()
