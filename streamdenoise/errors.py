"""Errors a user can cause and fix: the CLI prints them as one line, never a traceback."""


class UserError(Exception):
    """A runtime failure caused by the input or environment (missing file, dead camera...).

    The CLI prints ``str(err)`` and exits with :attr:`exit_code`.
    """

    exit_code = 1


class UsageError(UserError):
    """A malformed command line or config value."""

    exit_code = 2


class SourceError(UserError):
    """The source cannot be opened or read (after any retries it was allowed)."""


class SinkError(UserError):
    """An output cannot be opened or written."""


class BackendUnavailable(UserError):
    """A denoiser backend whose package or hardware is missing on this machine."""
