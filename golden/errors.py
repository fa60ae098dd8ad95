"""The one base class of every error this project reports to a user.

Every command line of the project (``gen.emit``, ``tb.sim``, ``tb.run``,
``golden.memory``, the report, ...) catches :class:`ProjectError` and prints
it as one ``<tool>: error: <message>`` line with a non-zero exit status.
Anything else that escapes is a bug in the project and keeps its traceback.

Subclasses name where the error comes from (``ConfigError``, ``NetworkError``,
``BuildError``, ...) and may also derive from a built-in class
(``ValueError``, ``RuntimeError``) for callers that catch those.
"""

from __future__ import annotations

__all__ = ["ProjectError", "OutputError"]


class ProjectError(Exception):
    """An error with a message meant for the user: one line, no traceback."""


class OutputError(ProjectError, OSError):
    """An output file or folder cannot be written (read-only, full, not a folder)."""
