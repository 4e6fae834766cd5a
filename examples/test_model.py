"""Evaluate a trained model on a target dataset (mAP, CMC, optional re-ranking)."""
import argparse
import os

from dualref.engine import options
from dualref.engine.runner import run_main, start_run
from dualref.pipeline.test import test_checkpoint
from dualref.utils.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Testing the model")
    options.add_data_args(parser, source=False, target_required=True, batch_size=256,
                          num_instances=False)
    options.add_model_args(parser)
    options.add_eval_args(parser)
    options.add_runtime_args(parser, logs_dir=False, train=False)
    parser.add_argument("--resume", required=True, metavar="PATH", help="checkpoint to test")
    parser.add_argument("--save-features", metavar="PATH",
                        help="write query/gallery features, ids and cameras to this HDF5 file")
    parser.add_argument("--vis-ranks", type=int, default=0, metavar="N",
                        help="save a picture of N queries with their top-10 gallery images")
    parser.add_argument("--vis-path", metavar="PNG",
                        help="where --vis-ranks writes its picture "
                             "(default: ranked_lists_<target>.png next to the checkpoint)")
    parser.add_argument("--cut_at_pooling", action="store_true",
                        help="accepted for compatibility with the original CLI; has no effect")
    return parser


def main(args: argparse.Namespace) -> None:
    if not os.path.isfile(args.resume):
        raise UserError(f"--resume {args.resume}: no such checkpoint file")
    logs_dir = os.path.dirname(os.path.abspath(args.resume))
    start_run(args, logs_dir, log_name="log_test.txt", options_name="options_test.json")
    tag = "_rerank" if args.rerank else ""
    test_checkpoint(
        args.resume, args.dataset_target, args.data_dir, arch=args.arch, features=args.features,
        dropout=args.dropout, height=args.height, width=args.width, batch_size=args.batch_size,
        workers=args.workers, device=args.device, amp=args.amp, rerank=args.rerank,
        save_features=args.save_features, vis_ranks=args.vis_ranks, vis_path=args.vis_path,
        skip_bad_images=args.skip_bad_images, verbose=not args.quiet,
        channels_last=args.channels_last, compile=args.compile,
        results_path=os.path.join(logs_dir, f"results_test_{args.dataset_target}{tag}.json"))


if __name__ == "__main__":
    run_main(build_parser(), main)
