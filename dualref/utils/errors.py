"""User-facing errors: one clear line, exit code 2, no traceback."""
from typing import Any


class UserError(Exception):
    """A mistake in the user's input (options, files, data layout).

    Drivers print ``str(err)`` on one line and exit with code 2; the library
    raises it wherever the cause is something the user can fix.
    """

    exit_code = 2


class ParamError(UserError):
    """A setting with a value that cannot work, named by its parameter (config field).

    ``str()`` reads ``knn=120: must be ...``; the command line shows the
    option instead (``--knn 120: must be ...``).
    """

    def __init__(self, param: str, value: Any, problem: str) -> None:
        self.param, self.value, self.problem = param, value, problem
        super().__init__(f"{param}={value!r}: {problem}")

    def for_option(self, flag: str) -> str:
        """The message with ``flag`` in place of the parameter name."""
        value = " ".join(map(str, self.value)) if isinstance(self.value, (list, tuple)) \
            else self.value
        return f"{flag} {value}: {self.problem}"


def check(condition: bool, param: str, value: Any, problem: str) -> None:
    """Raise :class:`ParamError` for ``param`` unless ``condition`` holds."""
    if not condition:
        raise ParamError(param, value, problem)


def require(condition: bool, message: str) -> None:
    """Raise :class:`UserError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)
