"""Entry-point wrapper: user mistakes become one line and exit code 2."""
import argparse
import dataclasses
import logging
import sys
import os
from typing import Any, Callable, Dict, Optional, Sequence, Union

from ..utils import distributed
from ..utils.errors import ParamError, UserError
from ..utils.io import write_json
from ..utils.logging import setup_logging
from .options import build_parser, config_from_args, flag_for

logger = logging.getLogger(__name__)


def run_main(parser: argparse.ArgumentParser, main: Callable[[argparse.Namespace], Any],
             argv: Optional[Sequence[str]] = None) -> Any:
    """Parse options and call ``main(args)``; exit 2 on a :class:`UserError`.

    ``--debug`` keeps the full traceback for bug reports. A :class:`ParamError`
    names the option that sets the parameter.
    """
    args = parser.parse_args(argv)
    try:
        return main(args)
    except UserError as err:
        if getattr(args, "debug", False):
            raise
        message = err.for_option(flag_for(parser, err.param)) if isinstance(err, ParamError) \
            else one_line(err)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
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


def start_run(settings: Dict[str, Any], logs_dir: str, log_name: str = "log.txt",
              options_name: str = "options.json") -> logging.Logger:
    """Set up logging into ``logs_dir`` and save the resolved ``settings`` there.

    Under ``torchrun`` only rank 0 writes files and logs; the others print
    warnings and errors only.
    """
    if not distributed.is_main():
        root = setup_logging(None, level=logging.WARNING)
        return root
    root = setup_logging(logs_dir, filename=log_name)
    write_json(f"{logs_dir}/{options_name}", settings)
    logger.info("==========\nArgs: %s\n==========", settings)
    return root


def drive(cls: type, description: str, run: Callable[[Any], Any],
          log_name: Union[str, Callable[[Any], str]] = "log.txt",
          options_name: str = "options.json", argv: Optional[Sequence[str]] = None) -> Any:
    """A driver's whole body: options generated from ``cls``, logging into the run
    folder, then ``run(config)``; user mistakes end in one line and exit code 2."""
    def main(args: argparse.Namespace) -> Any:
        cfg = config_from_args(cls, args)
        name = log_name(cfg) if callable(log_name) else log_name
        # the resolved config, as results.json records it (not the raw option values)
        start_run(dataclasses.asdict(cfg), run_folder(cfg), log_name=name,
                  options_name=options_name)
        return run(cfg)

    return run_main(build_parser(cls, description), main, argv)


def run_folder(cfg: Any) -> str:
    """Where a run logs: its ``logs_dir``, or beside the checkpoint a test evaluates."""
    if hasattr(cfg, "logs_dir"):
        return cfg.logs_dir
    if not os.path.isfile(cfg.resume):
        raise ParamError("resume", cfg.resume, "no such checkpoint file")
    return os.path.dirname(os.path.abspath(cfg.resume))
