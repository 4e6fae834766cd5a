"""Entry-point wrapper: user mistakes become one line and exit code 2."""
import argparse
import logging
import sys
from typing import Any, Callable, Optional, Sequence

from ..utils import distributed
from ..utils.errors import UserError
from ..utils.io import write_json
from ..utils.logging import setup_logging

logger = logging.getLogger(__name__)


def run_main(parser: argparse.ArgumentParser, main: Callable[[argparse.Namespace], Any],
             argv: Optional[Sequence[str]] = None) -> Any:
    """Parse options and call ``main(args)``; exit 2 on a :class:`UserError`.

    ``--debug`` keeps the full traceback for bug reports.
    """
    args = parser.parse_args(argv)
    try:
        return main(args)
    except UserError as err:
        if getattr(args, "debug", False):
            raise
        print(f"{parser.prog}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        distributed.shutdown()


def one_line(err: Exception) -> str:
    """The error's own message, also when a DataLoader worker wrapped it in a traceback."""
    lines = str(err).strip().splitlines()
    if len(lines) > 1 and "Traceback" in str(err):
        last = lines[-1]
        prefix = f"{type(err).__module__}.{type(err).__name__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return " ".join(line.strip() for line in lines)


def start_run(args: argparse.Namespace, logs_dir: str, log_name: str = "log.txt",
              options_name: str = "options.json") -> logging.Logger:
    """Set up logging into ``logs_dir`` and save the resolved options there.

    Under ``torchrun`` only rank 0 writes files and logs; the others print
    warnings and errors only.
    """
    if not distributed.is_main():
        root = setup_logging(None, level=logging.WARNING)
        return root
    root = setup_logging(logs_dir, filename=log_name)
    write_json(f"{logs_dir}/{options_name}", vars(args))
    logger.info("==========\nArgs: %s\n==========", vars(args))
    return root
