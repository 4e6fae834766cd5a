"""Evaluate a checkpoint on a dataset's query/gallery split."""
import logging
import os
from typing import Any

from ..configs import TestConfig
from ..datasets import has_test
from ..engine.state import load_weights
from ..evaluators.evaluator import squared_euclidean
from ..utils import distributed
from ..utils.checkpoint import load_checkpoint
from ..utils.device import setup_device
from ..utils.errors import ParamError, UserError
from ..utils.io import write_json
from .common import build_model, evaluate_model, load_dataset, prepare_model, save_features_h5

logger = logging.getLogger(__name__)


def run_test(cfg: TestConfig):
    """Load ``cfg.resume`` into a fresh model and print/write its target scores.

    Writes ``results_test_<target>[_rerank].json`` beside the checkpoint;
    optionally the features (HDF5) and a ranked-list picture of ``vis_ranks``
    queries (top-10 gallery, matches framed green). Under ``torchrun`` the
    ranks share the extraction and rank 0 writes the files.
    """
    if not os.path.isfile(cfg.resume):
        raise ParamError("resume", cfg.resume, "no such checkpoint file")
    dev = setup_device(cfg.device)
    verbose = cfg.verbose and distributed.is_main()
    state = load_checkpoint(cfg.resume)
    dataset = load_dataset(cfg.dataset_target, cfg.data_dir, verbose=verbose,
                           skip_bad_images=cfg.skip_bad_images)
    if not has_test(dataset):
        raise UserError(f"{cfg.dataset_target}: no query/ and gallery/ in {dataset.root} to "
                        "evaluate on; add them (Market-1501 names) or export features with "
                        "python -m dualref.extract")
    model = build_model(cfg.arch, pretrained=False, features=cfg.features, dropout=cfg.dropout)
    load_weights(cfg.resume, model, state)
    # Eval mode only: BatchNorm groups do not matter here.
    model = prepare_model(model, dev, cfg.batch_size, bn_group_size=0,
                          channels_last=cfg.channels_last, compile=cfg.compile)
    logger.info("Test on the target domain of %s:", cfg.dataset_target)
    result, query_feats, gallery_feats = evaluate_model(
        model, dataset, cfg.height, cfg.width, cfg.batch_size, cfg.workers, dev,
        rerank=cfg.rerank, amp=cfg.amp, verbose=verbose, channels_last=cfg.channels_last,
        rerank_options=(cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda))
    if distributed.is_main():
        _write_outputs(cfg, state, dataset, result, query_feats, gallery_feats)
    return result


def test_checkpoint(checkpoint: str, dataset_target: str, data_dir: str, **options: Any):
    """:func:`run_test` of ``checkpoint`` on ``dataset_target``; ``options``: other
    :class:`~dualref.configs.TestConfig` fields."""
    return run_test(TestConfig(resume=checkpoint, dataset_target=dataset_target, data_dir=data_dir,
                           **options))


def _write_outputs(cfg: TestConfig, state: dict, dataset, result, query_feats,
                   gallery_feats) -> None:
    """The results JSON beside the checkpoint, and the optional features and picture."""
    folder = os.path.dirname(os.path.abspath(cfg.resume))
    record = result.to_dict()
    record.update(checkpoint=os.path.abspath(cfg.resume), dataset=cfg.dataset_target,
                  epoch=state.get("epoch"))
    tag = "_rerank" if cfg.rerank else ""
    write_json(os.path.join(folder, f"results_test_{cfg.dataset_target}{tag}.json"), record)
    if cfg.save_features:
        save_features_h5(cfg.save_features, query_feats, gallery_feats, dataset.query,
                         dataset.gallery)
    if cfg.vis_ranks > 0:
        from ..visualize import save_ranked_lists

        path = cfg.vis_path or os.path.join(folder, f"ranked_lists_{cfg.dataset_target}.png")
        save_ranked_lists(squared_euclidean(query_feats, gallery_feats), dataset.query,
                          dataset.gallery, path, num_queries=cfg.vis_ranks,
                          title=f"{_run_name(cfg.resume)} on {cfg.dataset_target}")
        logger.info("Saved ranked lists of %d queries to %s", cfg.vis_ranks, path)


def _run_name(checkpoint: str) -> str:
    """``<run folder>/<file>``: enough to tell two runs' pictures apart."""
    path = os.path.abspath(checkpoint)
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
