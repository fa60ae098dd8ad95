"""Writing build output safely: all files or none, world-readable.

:func:`atomic_write` is the one writer of reports, manifests, Verilog, plots
and network files: each file is written to a temporary name in its own
folder and renamed over the target only after every file of the set is
complete, so an interrupted or failing run never leaves a half-written file.
Files are created with mode 0644 (``tempfile.mkstemp`` alone would give
0600).

:func:`check_writable_dir` is called before long work (a synthesis sweep, a
simulator build) so a read-only or missing output folder is reported at once,
as one :class:`golden.errors.OutputError` line, not after minutes of work.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_write", "check_writable_dir", "require_file", "FILE_MODE"]

#: Mode of every file the project writes (rw-r--r--).
FILE_MODE = 0o644


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_writable_dir(path, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) if missing and check a file can be created in it.

    Returns the path. Raises :class:`OutputError` naming ``what`` and the path
    when it exists and is not a folder, cannot be created, or is not writable
    (probed by creating and removing a temporary file, so read-only mounts and
    full disks are caught, not only permission bits).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{what} {p}: exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{what} {p}: not writable ({_describe(exc)})") from None
    return p


def require_file(path, what: str, error=None) -> str:
    """``path`` as a string if it names an existing regular file; otherwise raise
    ``error`` (a :class:`golden.errors.ProjectError` subclass, default
    ProjectError) with ``<what> '<path>': is a directory, not a file`` or
    ``... : no such file`` -- the one input-file check of every loader."""
    from .errors import ProjectError
    error = error or ProjectError
    p = os.fspath(path)
    if os.path.isdir(p):
        raise error(f"{what} {p!r}: is a directory, not a file")
    if not os.path.isfile(p):
        raise error(f"{what} {p!r}: no such file")
    return p


def atomic_write(files: Mapping, mode: int = FILE_MODE) -> list:
    """Write ``{path: str | bytes}`` all-or-nothing; return the paths written.

    ``str`` content is written as UTF-8 with ``\\n`` line ends. Parent folders
    are created. On any failure no target is touched (targets renamed before
    the failure keep their new content only if every write succeeded: all
    renames happen after all writes) and every temporary file is removed;
    the failure is raised as :class:`OutputError`.
    """
    tmps = []
    try:
        for path, content in files.items():
            path = Path(path)
            if path.exists() and path.is_dir():
                raise OutputError(f"{path}: is a directory")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmps.append((tmp, path))
            if isinstance(content, str):
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                    f.write(content)
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
            os.chmod(tmp, mode)
        for tmp, path in tmps:
            os.replace(tmp, path)
        written = [path for _, path in tmps]
        tmps = []
        return written
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        name = exc.filename or (tmps[-1][1] if tmps else "output")
        raise OutputError(f"cannot write {name}: {_describe(exc)}") from None
    finally:
        for tmp, _ in tmps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
