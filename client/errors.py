"""The one exception the client raises for anything a user can fix or should know about: the CLI
prints its message as a single `restore: error: ...` line and exits non-zero."""
from __future__ import annotations


class RestoreError(Exception):
    """A failure explained in one line, ready to show to the user."""


class Interrupted(RestoreError):
    """The user pressed Ctrl-C: stop everything (exit status 130), keeping finished segments."""


class ServerError(RestoreError):
    """The server failed, vanished or went silent mid-file: another server may well succeed."""
