"""Stage 1: pre-train on the labelled source, report direct transfer to the target."""
import argparse

from dualref.engine import options
from dualref.engine.config import config_from_args
from dualref.engine.runner import run_main, start_run
from dualref.pipeline.pretrain import PretrainConfig, pretrain


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Pre-training on the source domain")
    options.add_data_args(parser)
    options.add_model_args(parser)
    options.add_optim_args(parser, epochs=80, iters=200, eval_step=40)
    parser.add_argument("--warmup-step", type=int, default=10, help="warm-up epochs")
    parser.add_argument("--milestones", nargs="+", type=int, default=[40, 70],
                        help="epochs at which the learning rate is multiplied by 0.1")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="triplet margin (0: soft margin, as the paper)")
    options.add_eval_args(parser)
    parser.add_argument("--direct-transfer-model", choices=("last", "best"), default="last",
                        help="model whose target result is reported as direct transfer: the "
                             "last epoch's (the original's) or model_best's; both are recorded")
    parser.add_argument("--evaluate", action="store_true",
                        help="only evaluate the --resume checkpoint on source and target")
    parser.add_argument("--resume", default="", metavar="PATH",
                        help="checkpoint to continue from ('auto': this run's latest)")
    options.add_runtime_args(parser, logs_dir=True)
    return parser


def main(args: argparse.Namespace) -> None:
    start_run(args, args.logs_dir, log_name="log_test.txt" if args.evaluate else "log.txt")
    pretrain(config_from_args(PretrainConfig, args))


if __name__ == "__main__":
    run_main(build_parser(), main)
