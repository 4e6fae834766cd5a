"""Every setting of every stage, each default written once (docs/method.md).

The fields are the truth: ``dualref.cli`` generates the drivers' options
from them (help text, flags and checks sit next to each field), the library
takes the dataclasses as plain keyword arguments, and ``results.json``
records them. Defaults are the paper's and the original scripts'.
"""
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from .utils.fields import (DATA, EVAL, LABELS, LOSSES, MODEL, OPTIM, Codec, at_least_one, like, non_negative_float, non_negative_int, open_unit, option,
                           positive_float, positive_int, rho_value, smoothing, unit_interval)


def _dataset_names() -> List[str]:
    from . import datasets
    return datasets.names()


def _model_names() -> List[str]:
    from . import models
    return models.names()


def _parse_cluster_options(pairs: List[str]) -> Dict[str, Any]:
    from .clustering import parse_options
    return parse_options(pairs)


@dataclass
class RunConfig:
    """Settings every training stage shares."""

    # options the original drivers accepted that change nothing here
    COMPAT: ClassVar[Tuple[str, ...]] = ("momentum",)
    # fields of the class that its driver does not offer as options
    FIXED: ClassVar[Tuple[str, ...]] = ()

    dataset_source: str = option("dukemtmc", "labelled source dataset", group=DATA,
                                 flags=("-ds", "--dataset-source"), choices=_dataset_names)
    dataset_target: str = option("market1501", "unlabelled target dataset", group=DATA,
                                 flags=("-dt", "--dataset-target"), choices=_dataset_names)
    batch_size: int = option(64, "images per batch (the global batch, whatever the devices)",
                             group=DATA, flags=("-b", "--batch-size"), type=positive_int)
    workers: int = option(4, "data-loading worker processes", group=DATA, flags=("-j", "--workers"),
                          type=non_negative_int)
    height: int = option(256, "input height", group=DATA, type=positive_int)
    width: int = option(128, "input width", group=DATA, type=positive_int)
    pad: int = option(10, "padding before the random crop of training images (the original's "
                      "at 256x128; scale it with smaller inputs)", group=DATA,
                      type=non_negative_int, metavar="PIXELS")
    flip_probability: float = option(0.5, "probability of a horizontal flip of a training image",
                                     group=DATA, type=unit_interval)
    num_instances: int = option(4, "each batch holds batch_size / num_instances identities with "
                                "num_instances images each", group=DATA, type=positive_int)
    data_dir: str = option(os.path.join("examples", "data"), "folder holding <dataset>/<release "
                           "folder>", group=DATA, metavar="PATH")
    camera_pattern: Optional[str] = option(
        None, "-dt custom only: the train images' cameras from their first sub-folder ('folder') "
        "or a regular expression on the file name whose group 'cam' (or first group) is the "
        "camera (default: one camera)", group=DATA, metavar="folder|REGEX")
    skip_bad_images: bool = option(False, "decode every image once and skip (and count) the broken "
                                   "ones instead of stopping", group=DATA, action="store_true")

    arch: str = option("resnet50", "backbone", group=MODEL, flags=("-a", "--arch"),
                       choices=_model_names)
    features: int = option(0, "size of an extra embedding layer (0: none, as the paper)",
                           group=MODEL, type=non_negative_int)
    dropout: float = option(0.0, "dropout before the classifier", group=MODEL, type=unit_interval)
    classifier_std: float = option(0.001, "standard deviation of the classifier's normal init",
                                   group=MODEL, type=positive_float)

    lr: float = option(3.5e-4, "Adam learning rate", group=OPTIM, type=non_negative_float)
    weight_decay: float = option(5e-4, "Adam weight decay", group=OPTIM, type=non_negative_float)
    gamma: float = option(0.1, "learning-rate factor at each decay step", group=OPTIM,
                          type=open_unit)
    label_smoothing: float = option(0.1, "epsilon of the label-smoothed cross-entropy",
                                    group=OPTIM, type=smoothing, metavar="EPS")

    device: str = option("auto", "auto (CUDA if available, else CPU), cpu, cuda or cuda:N")
    amp: Optional[str] = option(None, "mixed-precision autocast (default: full float32)",
                                choices=["bf16", "fp16"])
    channels_last: bool = option(False, "model and images in channels-last memory layout (faster "
                                 "convolutions on GPUs)", action="store_true")
    compile: bool = option(False, "torch.compile the model (skipped with a warning where "
                           "unavailable)", action="store_true")
    bn_group_size: int = option(16, "BatchNorm statistics over groups of N images, as the "
                                "original's 4-GPU DataParallel with batch 64 (0: over the whole "
                                "per-device batch)", type=non_negative_int, metavar="N")
    bn_stats: str = option("first", "running statistics from the first group of each batch (what "
                           "DataParallel kept) or the mean over groups", choices=["first", "mean"])
    seed: int = option(1, "random seed of weights, sampling and augmentation", type=int)
    print_freq: int = option(50, "log a training line every this many iterations",
                             type=positive_int)
    verbose: bool = option(True, "no progress bars (log lines are kept)", flags=("--quiet",),
                           action="store_false")
    logs_dir: str = option(os.path.join("logs", "run"), "run folder: log, metrics, checkpoints",
                           metavar="PATH")
    resume: Optional[str] = option(None, "checkpoint to continue from ('auto': this run's latest)",
                                   metavar="PATH")


@dataclass
class PretrainConfig(RunConfig):
    """Stage 1: supervised pre-training on the source, direct transfer to the target."""

    logs_dir: str = like(RunConfig, "logs_dir", os.path.join("logs", "source-pretrain"))
    pretrained: bool = option(True, "start from random weights instead of ImageNet", group=MODEL,
                              flags=("--no-pretrained",), action="store_false")
    pretrained_path: Optional[str] = option(None, "ImageNet weights file to use instead of "
                                            "torchvision's cache", group=MODEL, metavar="PATH")
    epochs: int = option(80, "epochs", group=OPTIM, type=positive_int)
    iters: int = option(200, "iterations per epoch", group=OPTIM, type=positive_int)
    eval_step: int = option(40, "evaluate on the source every this many epochs (and at the end)",
                            group=OPTIM, type=positive_int)
    warmup_step: int = option(10, "warm-up epochs", group=OPTIM, type=non_negative_int)
    warmup_factor: float = option(0.01, "learning-rate factor at the start of the warm-up",
                                  group=OPTIM, type=open_unit)
    milestones: List[int] = option(help="epochs at which the learning rate is multiplied by "
                                   "--gamma", factory=lambda: [40, 70], group=OPTIM, nargs="+",
                                   type=int)
    margin: float = option(0.0, "triplet margin (0: soft margin, as the paper)", group=LOSSES,
                           type=non_negative_float)
    rerank: bool = option(False, "k-reciprocal re-ranking at test time", group=EVAL,
                          action="store_true")
    rerank_k1: int = option(20, "re-ranking: k-reciprocal neighbourhood size", group=EVAL,
                            type=positive_int)
    rerank_k2: int = option(6, "re-ranking: local query expansion size", group=EVAL,
                            type=positive_int)
    rerank_lambda: float = option(0.3, "re-ranking: weight of the original distance", group=EVAL,
                                  type=unit_interval)
    direct_transfer_model: str = option(
        "last", "model whose target result is reported as direct transfer: the last epoch's (the "
        "original's) or model_best's; both are recorded", group=EVAL, choices=("last", "best"))
    evaluate: bool = option(False, "only evaluate the --resume checkpoint on source and target",
                            group=EVAL, action="store_true")


def _decay_codec() -> Codec:
    return Codec(to_field=lambda every: every or None, to_option=lambda every: every or 0)


@dataclass
class AdaptConfig(RunConfig):
    """Stage 2, Dual-Refinement (its defaults; :class:`BaselineConfig` for the baseline)."""

    COMPAT: ClassVar[Tuple[str, ...]] = ("momentum", "rr_gpu")

    logs_dir: str = like(RunConfig, "logs_dir", os.path.join("logs", "adapt"))
    init: str = option("", "source-pretrained checkpoint (model_best.pth.tar of stage 1)",
                       group=MODEL, metavar="PATH")
    epochs: int = option(40, "epochs", group=OPTIM, type=positive_int)
    iters: int = option(400, "iterations per epoch", group=OPTIM, type=positive_int)
    eval_step: int = option(1, "evaluate on the target every this many epochs (and at the end)",
                            group=OPTIM, type=positive_int)
    epochs_decay: Optional[int] = option(
        20, "lr x --gamma every this many epochs; 0 = constant lr", group=OPTIM,
        flags=("--epochs_decay", "--epochs-decay"), type=non_negative_int, codec=_decay_codec())

    rho: Union[float, str] = option(
        1.6e-3, "eps = mean of the smallest rho-fraction of Jaccard distances; 'auto': 1.25 x the "
        "share of same-identity pairs expected from the target size and --images-per-id",
        group=LABELS, type=rho_value)
    images_per_id: float = option(17.2, "with --rho auto: the expected images per person in the "
                                  "target train set (Market-1501's)", group=LABELS,
                                  type=at_least_one)
    cluster: str = option("dbscan", "clusterer: dbscan (the paper's, eps from --rho) or infomap "
                          "(k-NN graph communities); see dualref.clustering.CLUSTERERS",
                          group=LABELS, metavar="NAME")
    cluster_options: Dict[str, Any] = option(
        help="an option of the chosen clusterer, e.g. k=15 or min_sim=0.5 for infomap "
        "(repeatable)", factory=dict, group=LABELS, flags=("--cluster-option",), action="append",
        metavar="KEY=VALUE", codec=Codec(_parse_cluster_options,
                                         lambda opts: [f"{k}={v}" for k, v in opts.items()]))
    k1: int = option(20, "k-reciprocal neighbourhood size of the Jaccard distance", group=LABELS,
                     type=positive_int)
    k2: int = option(6, "local query expansion size of the Jaccard distance", group=LABELS,
                     type=positive_int)
    min_samples: int = option(4, "DBSCAN min_samples", group=LABELS, type=positive_int)
    lambda_value: float = option(0.0, "weight of the source-distance term in the Jaccard distance",
                                 group=LABELS, type=unit_interval)
    R: Optional[int] = option(None, "prototypes per cluster for label refinement (default: 5 when "
                              "the target is market1501, else 2, as the paper)", group=LABELS,
                              flags=("--R",), type=positive_int)
    n_init: int = option(10, "k-means restarts per cluster in label refinement", group=LABELS,
                         type=positive_int)
    kmeans_seed: int = option(0, "random_state of every refinement k-means (the authors' 0)",
                              group=LABELS, type=non_negative_int)
    refine_backend: str = option("batched", "batched: all clusters' k-means at once on --device, "
                                 "same algorithm and random numbers; sklearn: one scikit-learn "
                                 "KMeans per cluster, the reference", group=LABELS,
                                 choices=["batched", "sklearn"])

    lmd: float = option(0.5, "weight of the classification terms", group=LOSSES,
                        type=non_negative_float)
    alpha: float = option(0.5, "weight of the refined-label losses (0: no LR)", group=LOSSES,
                          type=unit_interval)
    mu: float = option(0.1, "weight of the spread-out loss (0: no IM-SP)", group=LOSSES,
                       type=non_negative_float)
    knn: int = option(6, "top-k memory slots treated as positives", group=LOSSES,
                      type=non_negative_int)
    m: float = option(0.35, "margin of the spread-out loss", group=LOSSES, type=non_negative_float)
    memory_grad_scale: Optional[float] = option(
        None, "factor on the instance memory's gradient before each step (default: 1 / lmd, "
        "1 when lmd is 0, as the original)", group=LOSSES, type=non_negative_float)
    # The original's two drivers differ in these two settings as well as in
    # LR and IM-SP; both are options of both drivers so the factors separate.
    norm_features: bool = option(
        True, "feature the triplet/spread losses see: pooled x or normalised bn_x", group=LOSSES,
        flags=("--loss-feature",), choices=("pooled", "bn"),
        codec=Codec(lambda name: name == "bn", lambda norm: "bn" if norm else "pooled"))
    random_erasing: bool = option(True, "disable random erasing of training images", group=DATA,
                                  flags=("--no-random-erasing",), action="store_false")
    re_probability: float = option(0.5, "random erasing: probability per image", group=DATA,
                                   type=unit_interval)
    re_area: Tuple[float, float] = option((0.02, 0.4), "random erasing: smallest and largest "
                                          "erased share of the image", group=DATA, nargs=2,
                                          type=open_unit, metavar=("MIN", "MAX"))
    re_aspect: float = option(0.3, "random erasing: smallest aspect ratio (the largest is its "
                              "inverse)", group=DATA, type=open_unit)

    def __post_init__(self) -> None:
        if self.R is None:  # resolved here so results.json records the R actually used
            self.R = default_R(self.dataset_target)
        self.re_area = tuple(self.re_area)


@dataclass
class BaselineConfig(AdaptConfig):
    """The baseline: DBSCAN labels only, CE + triplet on the pooled feature, constant lr."""

    FIXED: ClassVar[Tuple[str, ...]] = ("alpha", "mu", "knn", "m", "memory_grad_scale", "R",
                                        "n_init", "kmeans_seed", "refine_backend")

    alpha: float = like(AdaptConfig, "alpha", 0.0)
    mu: float = like(AdaptConfig, "mu", 0.0)
    norm_features: bool = like(AdaptConfig, "norm_features", False)
    epochs_decay: Optional[int] = like(AdaptConfig, "epochs_decay", None)


@dataclass
class TestConfig:
    """Evaluating a checkpoint on a target's query/gallery (``examples/test_model.py``)."""

    __test__ = False  # not a pytest test class, whatever its name
    COMPAT: ClassVar[Tuple[str, ...]] = ("cut_at_pooling",)
    FIXED: ClassVar[Tuple[str, ...]] = ()

    resume: str = option(None, "checkpoint to test", metavar="PATH", required=True)
    dataset_target: str = option(None, "dataset to test on", group=DATA,
                                 flags=("-dt", "--dataset-target"), choices=_dataset_names,
                                 required=True)
    batch_size: int = like(RunConfig, "batch_size", 256)
    workers: int = like(RunConfig, "workers")
    height: int = like(RunConfig, "height")
    width: int = like(RunConfig, "width")
    data_dir: str = like(RunConfig, "data_dir")
    skip_bad_images: bool = like(RunConfig, "skip_bad_images")
    arch: str = like(RunConfig, "arch")
    features: int = like(RunConfig, "features")
    dropout: float = like(RunConfig, "dropout")
    rerank: bool = like(PretrainConfig, "rerank")
    rerank_k1: int = like(PretrainConfig, "rerank_k1")
    rerank_k2: int = like(PretrainConfig, "rerank_k2")
    rerank_lambda: float = like(PretrainConfig, "rerank_lambda")
    save_features: Optional[str] = option(None, "write query/gallery features, ids and cameras "
                                          "to this HDF5 file", group=EVAL, metavar="PATH")
    vis_ranks: int = option(0, "save a picture of N queries with their top-10 gallery images",
                            group=EVAL, type=non_negative_int, metavar="N")
    vis_path: Optional[str] = option(None, "where --vis-ranks writes its picture (default: "
                                     "ranked_lists_<target>.png next to the checkpoint)",
                                     group=EVAL, metavar="PNG")
    device: str = like(RunConfig, "device")
    amp: Optional[str] = like(RunConfig, "amp")
    channels_last: bool = like(RunConfig, "channels_last")
    compile: bool = like(RunConfig, "compile")
    verbose: bool = like(RunConfig, "verbose")


@dataclass
class ExtractConfig:
    """Features (and cluster labels) of an image folder (``python -m dualref.extract``)."""

    COMPAT: ClassVar[Tuple[str, ...]] = ()
    FIXED: ClassVar[Tuple[str, ...]] = ()

    model: str = option(None, "checkpoint (e.g. logs/.../model_best.pth.tar)", positional=True)
    images_dir: str = option(None, "folder of images (.jpg/.jpeg/.png, sub-folders too)",
                             positional=True)
    out: str = option(None, "HDF5 file to write", positional=True)
    arch: str = option("auto", "architecture (default: read from the checkpoint)", group=MODEL,
                       flags=("-a", "--arch"))
    features: int = like(RunConfig, "features")
    height: int = like(RunConfig, "height")
    width: int = like(RunConfig, "width")
    batch_size: int = like(TestConfig, "batch_size")
    workers: int = like(RunConfig, "workers")
    cluster: bool = option(False, "also write DBSCAN cluster labels (-1: outlier)", group=LABELS,
                           action="store_true")
    rho: Union[float, str] = like(AdaptConfig, "rho", "auto")
    images_per_id: float = like(AdaptConfig, "images_per_id")
    k1: int = like(AdaptConfig, "k1")
    k2: int = like(AdaptConfig, "k2")
    min_samples: int = like(AdaptConfig, "min_samples")
    device: str = like(RunConfig, "device")
    amp: Optional[str] = like(RunConfig, "amp")
    verbose: bool = like(RunConfig, "verbose")


def default_R(dataset_target: str) -> int:
    """The paper's R: 5 for Duke->Market, 2 for Market->Duke (and other targets)."""
    return 5 if dataset_target == "market1501" else 2


__all__ = ["AdaptConfig", "BaselineConfig", "ExtractConfig", "PretrainConfig", "RunConfig",
           "TestConfig", "default_R"]
