"""Writing a file so that a reader never sees half of it and a failure leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, swapped in at once.

    Only a regular file is replaced; the temporary file is removed on any failure; ``mode``
    sets the file's permissions (``mkstemp`` makes it private). Raises :class:`OSError`.
    """
    temporary: str | None = None
    try:
        if path.exists() and not path.is_file():
            raise IsADirectoryError(21, "it is not a regular file", str(path))
        above = next(parent for parent in path.absolute().parents if parent.exists())
        if not above.is_dir():
            raise NotADirectoryError(20, f"{above} is a file, not a folder", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
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
