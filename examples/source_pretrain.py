"""Stage 1: pre-train on the labelled source, report direct transfer to the target."""
import argparse

from dualref.engine.config import config_from_args
from dualref.engine.options import build_pretrain_parser
from dualref.engine.runner import run_main, start_run
from dualref.pipeline.pretrain import PretrainConfig, pretrain


def main(args: argparse.Namespace) -> None:
    start_run(args, args.logs_dir, log_name="log_test.txt" if args.evaluate else "log.txt")
    pretrain(config_from_args(PretrainConfig, args))


if __name__ == "__main__":
    run_main(build_pretrain_parser(), main)
