"""The one error type of the command line: printed as one line, exit status 2, no traceback."""


class CliError(Exception):
    """A user-facing error; the message says what was wrong and how to fix it."""
