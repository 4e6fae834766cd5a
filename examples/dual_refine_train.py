"""Dual-Refinement: off-line label refinement + instance-memory spread-out loss.

The paper's ablations are option settings: ``--alpha 0.5 --mu 0`` (LR only),
``--alpha 0 --mu 0.1`` (IM-SP only), ``--alpha 0.5 --mu 0.1`` (both).
"""
import argparse

from dualref.engine.config import config_from_args
from dualref.engine.options import build_adapt_parser
from dualref.engine.runner import run_main, start_run
from dualref.pipeline.adapt import AdaptConfig, adapt


def main(args: argparse.Namespace) -> None:
    start_run(args, args.logs_dir)
    adapt(config_from_args(AdaptConfig, args))


if __name__ == "__main__":
    run_main(build_adapt_parser("dual"), main)
