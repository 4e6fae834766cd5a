"""Command-line options shared by the drivers (names as in the original code)."""
import argparse
import os
from typing import Any, Callable


def _checked(cast: Callable[[str], Any], ok: Callable[[Any], bool], expected: str,
             name: str) -> Callable[[str], Any]:
    """An argparse ``type`` that converts with ``cast`` and rejects values failing ``ok``."""
    def parse(text: str) -> Any:
        value = cast(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return parse


_positive_int = _checked(int, lambda v: v > 0, "a positive integer", "positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0", "integer")
_fraction = _checked(float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)", "fraction")
_unit_interval = _checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]", "number")
_non_negative_float = _checked(float, lambda v: v >= 0, "a number >= 0", "number")
_smoothing = _checked(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)", "number")
_positive_float = _checked(float, lambda v: v >= 1, "a number >= 1", "number")


def default_data_dir() -> str:
    """``examples/data`` of the checkout (the original README's location)."""
    return os.path.join(os.getcwd(), "examples", "data")


def add_data_args(parser: argparse.ArgumentParser, source: bool = True, target: bool = True,
                  target_required: bool = False, batch_size: int = 64, workers: int = 4,
                  num_instances: bool = True) -> None:
    """Datasets, image size, batch composition, data folder."""
    from .. import datasets

    group = parser.add_argument_group("data")
    if source:
        group.add_argument("-ds", "--dataset-source", default="dukemtmc", choices=datasets.names())
    if target:
        group.add_argument("-dt", "--dataset-target", required=target_required,
                           default=None if target_required else "market1501",
                           choices=datasets.names())
    group.add_argument("-b", "--batch-size", type=_positive_int, default=batch_size)
    group.add_argument("-j", "--workers", type=_non_negative_int, default=workers,
                       help="data-loading worker processes")
    group.add_argument("--height", type=_positive_int, default=256, help="input height")
    group.add_argument("--width", type=_positive_int, default=128, help="input width")
    if source:  # training drivers only
        group.add_argument("--pad", type=_non_negative_int, default=10, metavar="PIXELS",
                           help="padding before the random crop of training images (10, the "
                                "original's at 256x128; scale it with smaller inputs)")
    if num_instances:
        group.add_argument("--num-instances", type=_positive_int, default=4,
                           help="each batch holds batch_size / num_instances identities "
                                "with num_instances images each")
    group.add_argument("--data-dir", metavar="PATH", default=default_data_dir(),
                       help="folder holding <dataset>/<release folder> (default: examples/data)")
    if target:
        group.add_argument("--camera-pattern", metavar="folder|REGEX", default=None,
                           help="-dt custom only: the train images' cameras from their first "
                                "sub-folder ('folder') or a regular expression on the file name "
                                "whose group 'cam' (or first group) is the camera "
                                "(default: one camera)")
    group.add_argument("--skip-bad-images", action="store_true",
                       help="decode every image once and skip (and count) the broken ones "
                            "instead of stopping")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Architecture and head options."""
    from .. import models

    group = parser.add_argument_group("model")
    group.add_argument("-a", "--arch", default="resnet50", choices=models.names())
    group.add_argument("--features", type=_non_negative_int, default=0,
                       help="size of an extra embedding layer (0: none, as the paper)")
    group.add_argument("--dropout", type=_unit_interval, default=0.0)
    group.add_argument("--no-pretrained", action="store_true",
                       help="start from random weights instead of ImageNet")
    group.add_argument("--pretrained-path", metavar="PATH", default=None,
                       help="ImageNet weights file to use instead of torchvision's cache")


def add_optim_args(parser: argparse.ArgumentParser, epochs: int, iters: int, eval_step: int,
                   lr: float = 3.5e-4) -> None:
    """Optimiser and schedule options."""
    group = parser.add_argument_group("optimisation")
    group.add_argument("--lr", type=_non_negative_float, default=lr)
    group.add_argument("--momentum", type=float, default=0.9, help="unused by Adam; kept for the original CLI")
    group.add_argument("--weight-decay", type=_non_negative_float, default=5e-4)
    group.add_argument("--epochs", type=_positive_int, default=epochs)
    group.add_argument("--iters", type=_positive_int, default=iters, help="iterations per epoch")
    group.add_argument("--eval-step", type=_positive_int, default=eval_step,
                       help="evaluate every this many epochs (and at the end)")
    group.add_argument("--label-smoothing", dest="label_smoothing", type=_smoothing,
                       default=0.1, metavar="EPS",
                       help="epsilon of the label-smoothed cross-entropy (the paper's 0.1)")


def add_runtime_args(parser: argparse.ArgumentParser, logs_dir: bool = True,
                     seed: int = 1, train: bool = True) -> None:
    """Device, seed, logging and run-folder options (``train``: BatchNorm grouping too)."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", default="auto",
                       help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N")
    group.add_argument("--amp", choices=["bf16", "fp16"], default=None,
                       help="mixed-precision autocast (default: full float32)")
    group.add_argument("--channels-last", action="store_true",
                       help="model and images in channels-last memory layout (faster convs on GPUs)")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the model (skipped with a warning where unavailable)")
    if train:
        add_batchnorm_args(group)
    group.add_argument("--seed", type=int, default=seed)
    group.add_argument("--print-freq", type=_positive_int, default=50)
    group.add_argument("--quiet", action="store_true", help="no progress bars (log lines are kept)")
    group.add_argument("--debug", action="store_true", help="show full tracebacks")
    if logs_dir:
        group.add_argument("--logs-dir", metavar="PATH", default=os.path.join("logs", "run"))


def add_batchnorm_args(group) -> None:
    """BatchNorm grouping: the same statistics on one GPU, four, or many processes."""
    group.add_argument("--bn-group-size", type=_non_negative_int, default=16, metavar="N",
                       help="BatchNorm statistics over groups of N images, as the original's "
                            "4-GPU DataParallel with batch 64 (0: over the whole per-device batch)")
    group.add_argument("--bn-stats", choices=["first", "mean"], default="first",
                       help="running statistics from the first group of each batch (what "
                            "DataParallel kept) or the mean over groups")


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    """Evaluation options."""
    group = parser.add_argument_group("evaluation")
    group.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")


def rho_value(text: str):
    """``--rho``: a fraction in (0, 1), or ``auto``."""
    return "auto" if text == "auto" else _fraction(text)


rho_value.__name__ = "rho"


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    """Pseudo-labelling options (docs/method.md, stage 2)."""
    group = parser.add_argument_group("pseudo labels")
    group.add_argument("--rho", type=rho_value, default=1.6e-3,
                       help="eps = mean of the smallest rho-fraction of Jaccard distances; "
                            "'auto': 1.25 x the share of same-identity pairs expected from "
                            "the target size and --images-per-id (1.57e-3 on Market-1501)")
    group.add_argument("--images-per-id", type=_positive_float, default=17.2,
                       help="with --rho auto: the expected images per person in the target "
                            "train set (default 17.2, Market-1501's)")
    group.add_argument("--cluster", default="dbscan", metavar="NAME",
                       help="clusterer: dbscan (the paper's, eps from --rho) or infomap "
                            "(k-NN graph communities); see dualref.clustering.CLUSTERERS")
    group.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the chosen clusterer, e.g. k=15 or min_sim=0.5 "
                            "for infomap (repeatable)")
    group.add_argument("--k1", type=_positive_int, default=20)
    group.add_argument("--k2", type=_positive_int, default=6)
    group.add_argument("--min-samples", type=_positive_int, default=4)
    group.add_argument("--lambda-value", type=_unit_interval, default=0.0,
                       help="weight of the source-distance term in the Jaccard distance")
    group.add_argument("--rr-gpu", action="store_true",
                       help="accepted for compatibility; the Jaccard distance runs on --device")


def build_pretrain_parser() -> argparse.ArgumentParser:
    """Every option of stage 1 (``examples/source_pretrain.py``)."""
    parser = argparse.ArgumentParser(description="Pre-training on the source domain")
    add_data_args(parser)
    add_model_args(parser)
    add_optim_args(parser, epochs=80, iters=200, eval_step=40)
    parser.add_argument("--warmup-step", type=int, default=10, help="warm-up epochs")
    parser.add_argument("--milestones", nargs="+", type=int, default=[40, 70],
                        help="epochs at which the learning rate is multiplied by 0.1")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="triplet margin (0: soft margin, as the paper)")
    add_eval_args(parser)
    parser.add_argument("--direct-transfer-model", choices=("last", "best"), default="last",
                        help="model whose target result is reported as direct transfer: the "
                             "last epoch's (the original's) or model_best's; both are recorded")
    parser.add_argument("--evaluate", action="store_true",
                        help="only evaluate the --resume checkpoint on source and target")
    parser.add_argument("--resume", default="", metavar="PATH",
                        help="checkpoint to continue from ('auto': this run's latest)")
    add_runtime_args(parser, logs_dir=True)
    return parser


def build_adapt_parser(method: str) -> argparse.ArgumentParser:
    """Options of ``baseline_train.py`` (method 'baseline') or ``dual_refine_train.py``."""
    dual = method == "dual"
    parser = argparse.ArgumentParser(
        description="Dual-Refinement training" if dual else "Clustering baseline training")
    add_data_args(parser)
    add_model_args(parser)
    add_optim_args(parser, epochs=40, iters=400, eval_step=1)
    parser.add_argument("--init", default="", metavar="PATH",
                        help="source-pretrained checkpoint (model_best.pth.tar of stage 1)")
    parser.add_argument("--resume", default="", metavar="PATH",
                        help="continue a run from its checkpoint ('auto': this run's latest)")
    add_cluster_args(parser)
    group = parser.add_argument_group("losses")
    group.add_argument("--lmd", type=_non_negative_float, default=0.5,
                       help="weight of the classification terms")
    # The original's two drivers differ in these two settings as well as in
    # LR and IM-SP; both are options of both drivers so the factors separate.
    group.add_argument("--loss-feature", choices=("pooled", "bn"), default="bn" if dual else "pooled",
                       help="feature the triplet/spread losses see: pooled x or normalised bn_x "
                            f"(default: {'bn, as the original Dual-Refinement' if dual else 'pooled, as the original baseline'})")
    group.add_argument("--epochs_decay", "--epochs-decay", dest="epochs_decay",
                       type=_non_negative_int, default=20 if dual else 0,
                       help="lr x0.1 every this many epochs; 0 = constant lr "
                            f"(default: {20 if dual else 0}, as the original's "
                            f"{'Dual-Refinement' if dual else 'baseline'})")
    if dual:
        group.add_argument("--alpha", type=_unit_interval, default=0.5,
                           help="weight of the refined-label losses (0: no LR)")
        group.add_argument("--mu", type=_non_negative_float, default=0.1,
                           help="weight of the spread-out loss (0: no IM-SP)")
        group.add_argument("--knn", type=_positive_int, default=6,
                           help="top-k memory slots treated as positives")
        group.add_argument("--m", type=_non_negative_float, default=0.35,
                           help="margin of the spread-out loss")
        group.add_argument("--R", type=_positive_int, default=None,
                           help="prototypes per cluster for label refinement "
                                "(default: 5 when the target is market1501, else 2, as the paper)")
        group.add_argument("--n-init", dest="n_init", type=_positive_int, default=10,
                           help="k-means restarts per cluster in label refinement")
        group.add_argument("--kmeans-seed", dest="kmeans_seed", type=_non_negative_int, default=0,
                           help="random_state of every refinement k-means (the authors' 0)")
        group.add_argument("--refine-backend", dest="refine_backend",
                           choices=["batched", "sklearn"], default="batched",
                           help="batched: all clusters' k-means at once on --device, same "
                                "algorithm and random numbers; sklearn: one scikit-learn "
                                "KMeans per cluster, the reference")
    group.add_argument("--no-random-erasing", dest="random_erasing", action="store_false",
                       help="disable random erasing of training images")
    add_runtime_args(parser, logs_dir=True)
    return parser
