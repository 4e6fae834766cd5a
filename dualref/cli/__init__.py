"""The command line: options generated from the configs, and the drivers' entry wrapper."""
from .main import drive, one_line, run_folder, run_main, start_run
from .options import build_parser, config_from_args

__all__ = ["build_parser", "config_from_args", "drive", "one_line", "run_folder", "run_main",
           "start_run"]
