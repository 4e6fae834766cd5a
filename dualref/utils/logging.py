"""Standard-library logging to the console and ``<logs_dir>/log.txt``."""
import logging
import sys
from pathlib import Path
from typing import Optional

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_TAG = "_dualref_handler"


def setup_logging(logs_dir: Optional[str] = None, level: int = logging.INFO,
                  filename: str = "log.txt") -> logging.Logger:
    """Configure the ``dualref`` logger; safe to call more than once.

    Messages go to stdout as plain text (so the original ``Mean AP: ..`` lines
    read and redirect as before; progress bars use stderr) and, when
    ``logs_dir`` is given, to ``logs_dir/filename`` with timestamps.
    """
    root = logging.getLogger("dualref")
    root.setLevel(level)
    root.propagate = False
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_TAG, False)]:
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    _add(root, console)
    if logs_dir is not None:
        Path(logs_dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(Path(logs_dir) / filename)
        file_handler.setFormatter(logging.Formatter(FORMAT))
        _add(root, file_handler)
    return root


def _add(logger: logging.Logger, handler: logging.Handler) -> None:
    setattr(handler, _HANDLER_TAG, True)
    logger.addHandler(handler)
