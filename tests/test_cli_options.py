"""Options generated from the configs: one default per setting, every option reaches a field."""
import argparse
import dataclasses
import os
import re
import shlex

import pytest

from dualref.cli import build_parser, config_from_args
from dualref.cli.options import COMPAT, CLI_ONLY, option_fields
from dualref.configs import (AdaptConfig, BaselineConfig, ExtractConfig, PretrainConfig,
                             TestConfig)
from dualref.utils.fields import field_default

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [PretrainConfig, AdaptConfig, BaselineConfig, TestConfig, ExtractConfig]
REQUIRED = {TestConfig: ["--resume", "x.pth.tar", "-dt", "market1501"],
            ExtractConfig: ["m.pth.tar", "images", "out.h5"]}


def _parse(cls, argv=()):
    return build_parser(cls, "test").parse_args(REQUIRED.get(cls, []) + list(argv))


def adapt_parser(method):
    return build_parser(AdaptConfig if method == "dual" else BaselineConfig, "test")


def adapt_config(method, argv=()):
    cls = AdaptConfig if method == "dual" else BaselineConfig
    return config_from_args(cls, _parse(cls, argv))


@pytest.mark.parametrize("cls", CONFIGS)
def test_parser_defaults_are_the_dataclass_defaults(cls):
    """No default is written twice: parsing nothing gives the dataclass's own defaults."""
    cfg = config_from_args(cls, _parse(cls))
    names = {f.name for f in dataclasses.fields(cls)}
    given = {"resume", "dataset_target", "model", "images_dir", "out"} & names \
        if cls in REQUIRED else set()
    for f in dataclasses.fields(cls):
        if f.name not in given:
            assert getattr(cfg, f.name) == getattr(cls(**{n: getattr(cfg, n) for n in given}),
                                                   f.name), f.name
            if f.name != "R":  # resolved from the target in __post_init__
                assert getattr(cfg, f.name) == field_default(f), f.name


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_option_reaches_a_field(cls):
    names = {f.name for f in dataclasses.fields(cls)}
    for action in build_parser(cls, "test")._actions:
        if action.dest == "help":
            continue
        assert action.dest in names or action.dest in COMPAT or action.dest in CLI_ONLY, \
            (cls.__name__, action.option_strings)
    offered = {f.name for f in option_fields(cls)}
    assert offered == names - set(cls.FIXED)  # every field is an option unless fixed


def test_an_option_without_a_field_is_an_error():
    args = argparse.Namespace(**vars(_parse(BaselineConfig)), alpha_typo=1.0)
    with pytest.raises(TypeError, match="alpha_typo"):
        config_from_args(BaselineConfig, args)


def test_compat_options_are_accepted_and_dropped():
    cfg = config_from_args(AdaptConfig, _parse(AdaptConfig, ["--momentum", "0.5", "--rr-gpu"]))
    assert not hasattr(cfg, "momentum") and not hasattr(cfg, "rr_gpu")


def _script_options(name):
    text = open(os.path.join(REPO, "scripts", name)).read()
    line = text[text.index("run_driver "):].split('"$@"')[0].replace("\\\n", " ")
    return [word for word in shlex.split(line) if word.startswith("-")]


@pytest.mark.parametrize("name,allowed", [
    ("pretrain.sh", {"-ds", "-dt", "--seed", "--logs-dir"}),
    ("train_baseline.sh", {"-ds", "-dt", "--seed", "--init", "--logs-dir"}),
    ("train_dual_refinement.sh", {"-ds", "-dt", "--seed", "--R", "--init", "--logs-dir"}),
    ("test.sh", {"-j", "--dataset-target", "--resume"}),
])
def test_scripts_set_only_what_the_original_sets_per_direction(name, allowed):
    assert set(_script_options(name)) <= allowed


@pytest.mark.parametrize("method, norm, decay", [("baseline", False, None), ("dual", True, 20)])
def test_each_driver_defaults_to_the_originals_feature_and_schedule(method, norm, decay):
    cfg = adapt_config(method)
    assert cfg.norm_features is norm and cfg.epochs_decay == decay


@pytest.mark.parametrize("method", ["baseline", "dual"])
def test_feature_and_schedule_are_options_of_both_drivers(method):
    cfg = adapt_config(method, ["--loss-feature", "bn", "--epochs_decay", "6"])
    assert cfg.norm_features is True and cfg.epochs_decay == 6
    cfg = adapt_config(method, ["--loss-feature", "pooled", "--epochs-decay", "0"])
    assert cfg.norm_features is False and cfg.epochs_decay is None  # 0: constant lr


def test_baseline_fixes_the_dual_refinement_weights(capsys):
    cfg = adapt_config("baseline")
    assert (cfg.alpha, cfg.mu) == (0.0, 0.0)
    with pytest.raises(SystemExit):
        adapt_parser("baseline").parse_args(["--alpha", "0.5"])
    assert "--alpha" in capsys.readouterr().err


def test_wrong_loss_feature_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        adapt_parser("dual").parse_args(["--loss-feature", "x"])
    assert err.value.code == 2
    assert "--loss-feature" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["baseline", "dual"])
def test_pad_and_rho_auto_reach_the_config(method):
    cfg = adapt_config(method)
    assert cfg.pad == 10 and cfg.rho == 1.6e-3 and cfg.images_per_id == 17.2
    cfg = adapt_config(method, ["--pad", "3", "--rho", "auto", "--images-per-id", "14"])
    assert cfg.pad == 3 and cfg.rho == "auto" and cfg.images_per_id == 14


@pytest.mark.parametrize("value", ["0", "1.5", "x"])
def test_bad_rho_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as err:
        adapt_parser("dual").parse_args(["--rho", value])
    assert err.value.code == 2 and "--rho" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["baseline", "dual"])
def test_label_smoothing_reaches_both_stages_configs(method):
    assert adapt_config(method).label_smoothing == 0.1
    assert adapt_config(method, ["--label-smoothing", "0"]).label_smoothing == 0.0
    cfg = config_from_args(PretrainConfig, _parse(PretrainConfig, ["--label-smoothing", "0.2"]))
    assert cfg.label_smoothing == 0.2


def test_refinement_options_reach_the_config():
    cfg = adapt_config("dual")
    assert (cfg.n_init, cfg.kmeans_seed, cfg.refine_backend) == (10, 0, "batched")
    cfg = adapt_config("dual", ["--n-init", "3", "--kmeans-seed", "7", "--refine-backend",
                                "sklearn"])
    assert (cfg.n_init, cfg.kmeans_seed, cfg.refine_backend) == (3, 7, "sklearn")


def test_published_constants_are_options():
    cfg = adapt_config("dual", ["--re-probability", "0.3", "--re-area", "0.05", "0.2",
                                "--re-aspect", "0.5", "--flip-probability", "0", "--gamma", "0.5",
                                "--classifier-std", "0.01", "--memory-grad-scale", "1",
                                "--cluster-option", "k=5", "--knn", "0"])
    assert (cfg.re_probability, cfg.re_area, cfg.re_aspect) == (0.3, (0.05, 0.2), 0.5)
    assert (cfg.flip_probability, cfg.gamma, cfg.classifier_std) == (0.0, 0.5, 0.01)
    assert (cfg.memory_grad_scale, cfg.cluster_options, cfg.knn) == (1.0, {"k": 5}, 0)
    cfg = config_from_args(PretrainConfig, _parse(PretrainConfig, [
        "--warmup-factor", "0.1", "--rerank-k1", "10", "--rerank-k2", "3", "--rerank-lambda",
        "0.5"]))
    assert (cfg.warmup_factor, cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda) == (0.1, 10, 3, 0.5)
    cfg = config_from_args(TestConfig, _parse(TestConfig, ["--rerank-lambda", "0"]))
    assert cfg.rerank_lambda == 0.0


@pytest.mark.parametrize("args", [["--label-smoothing", "1"], ["--n-init", "0"],
                                  ["--refine-backend", "gpu"], ["--re-area", "0", "0.4"],
                                  ["--gamma", "0"], ["--knn", "-1"]])
def test_bad_method_constants_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as err:
        adapt_parser("dual").parse_args(args)
    assert err.value.code == 2 and args[0] in capsys.readouterr().err


def test_help_shows_each_default_once_from_the_field():
    text = adapt_parser("dual").format_help()
    assert re.search(r"--knn KNN\s+top-k memory slots treated as positives \(default: 6\)", text)
    assert "(default: bn)" in text and "(default: pooled)" in adapt_parser("baseline").format_help()
