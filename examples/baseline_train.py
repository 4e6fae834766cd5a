"""Stage 2 baseline: DBSCAN pseudo-labels, CE + triplet (pooled feature, constant lr by default)."""
import argparse

from dualref.engine.config import config_from_args
from dualref.engine.options import build_adapt_parser
from dualref.engine.runner import run_main, start_run
from dualref.pipeline.adapt import AdaptConfig, adapt


def main(args: argparse.Namespace) -> None:
    start_run(args, args.logs_dir)
    # The baseline: no refined labels, no spread-out loss.
    adapt(config_from_args(AdaptConfig, args, alpha=0.0, mu=0.0))


if __name__ == "__main__":
    run_main(build_adapt_parser("baseline"), main)
