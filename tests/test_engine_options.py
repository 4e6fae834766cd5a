"""Options that separate the original's baseline/Dual-Refinement differences."""
import pytest

from dualref.engine.config import config_from_args
from dualref.engine.options import build_adapt_parser
from dualref.pipeline.adapt import AdaptConfig


@pytest.mark.parametrize("method, norm, decay", [("baseline", False, None), ("dual", True, 20)])
def test_each_driver_defaults_to_the_originals_feature_and_schedule(method, norm, decay):
    cfg = config_from_args(AdaptConfig, build_adapt_parser(method).parse_args([]))
    assert cfg.norm_features is norm and cfg.epochs_decay == decay


@pytest.mark.parametrize("method", ["baseline", "dual"])
def test_feature_and_schedule_are_options_of_both_drivers(method):
    args = build_adapt_parser(method).parse_args(["--loss-feature", "bn", "--epochs_decay", "6"])
    cfg = config_from_args(AdaptConfig, args)
    assert cfg.norm_features is True and cfg.epochs_decay == 6
    args = build_adapt_parser(method).parse_args(["--loss-feature", "pooled", "--epochs-decay", "0"])
    cfg = config_from_args(AdaptConfig, args)
    assert cfg.norm_features is False and cfg.epochs_decay is None  # 0: constant lr


def test_wrong_loss_feature_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        build_adapt_parser("dual").parse_args(["--loss-feature", "x"])
    assert err.value.code == 2
    assert "--loss-feature" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["baseline", "dual"])
def test_pad_and_rho_auto_reach_the_config(method):
    cfg = config_from_args(AdaptConfig, build_adapt_parser(method).parse_args([]))
    assert cfg.pad == 10 and cfg.rho == 1.6e-3 and cfg.images_per_id == 17.2
    args = build_adapt_parser(method).parse_args(["--pad", "3", "--rho", "auto",
                                                  "--images-per-id", "14"])
    cfg = config_from_args(AdaptConfig, args)
    assert cfg.pad == 3 and cfg.rho == "auto" and cfg.images_per_id == 14


@pytest.mark.parametrize("value", ["0", "1.5", "x"])
def test_bad_rho_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as err:
        build_adapt_parser("dual").parse_args(["--rho", value])
    assert err.value.code == 2 and "--rho" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["baseline", "dual"])
def test_label_smoothing_reaches_both_stages_configs(method):
    from dualref.engine.options import build_pretrain_parser
    from dualref.pipeline.pretrain import PretrainConfig
    assert config_from_args(AdaptConfig, build_adapt_parser(method).parse_args([])).label_smoothing == 0.1
    cfg = config_from_args(AdaptConfig, build_adapt_parser(method).parse_args(
        ["--label-smoothing", "0"]))
    assert cfg.label_smoothing == 0.0
    cfg = config_from_args(PretrainConfig, build_pretrain_parser().parse_args(
        ["--label-smoothing", "0.2"]))
    assert cfg.label_smoothing == 0.2


def test_refinement_options_reach_the_config():
    cfg = config_from_args(AdaptConfig, build_adapt_parser("dual").parse_args([]))
    assert (cfg.n_init, cfg.kmeans_seed, cfg.refine_backend) == (10, 0, "batched")
    cfg = config_from_args(AdaptConfig, build_adapt_parser("dual").parse_args(
        ["--n-init", "3", "--kmeans-seed", "7", "--refine-backend", "sklearn"]))
    assert (cfg.n_init, cfg.kmeans_seed, cfg.refine_backend) == (3, 7, "sklearn")


@pytest.mark.parametrize("args", [["--label-smoothing", "1"], ["--n-init", "0"],
                                  ["--refine-backend", "gpu"]])
def test_bad_method_constants_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as err:
        build_adapt_parser("dual").parse_args(args)
    assert err.value.code == 2 and args[0] in capsys.readouterr().err
