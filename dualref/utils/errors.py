"""User-facing errors: one clear line, exit code 2, no traceback."""


class UserError(Exception):
    """A mistake in the user's input (options, files, data layout).

    Drivers print ``str(err)`` on one line and exit with code 2; the library
    raises it wherever the cause is something the user can fix.
    """

    exit_code = 2


def require(condition: bool, message: str) -> None:
    """Raise :class:`UserError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)
