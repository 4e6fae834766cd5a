"""Evaluate a checkpoint on a dataset's query/gallery split."""
import logging
import os
from typing import Optional

from ..datasets import has_test
from ..evaluators.evaluator import squared_euclidean
from ..utils.errors import UserError
from ..utils.checkpoint import load_checkpoint
from ..utils import distributed
from ..utils.device import setup_device
from ..utils.io import write_json
from .common import build_model, evaluate_model, load_dataset, prepare_model, save_features_h5
from .state import load_weights

logger = logging.getLogger(__name__)


def test_checkpoint(checkpoint: str, dataset_target: str, data_dir: str, arch: str = "resnet50",
                    features: int = 0, dropout: float = 0.0, height: int = 256,
                    width: int = 128, batch_size: int = 256, workers: int = 4,
                    device: str = "auto", amp: Optional[str] = None, rerank: bool = False,
                    save_features: Optional[str] = None, results_path: Optional[str] = None,
                    vis_ranks: int = 0, vis_path: Optional[str] = None, verbose: bool = True,
                    channels_last: bool = False, compile: bool = False,
                    skip_bad_images: bool = False):
    """Load ``checkpoint`` into a fresh model and print/write its target scores.

    Optionally saves the features (HDF5) and a ranked-list picture of
    ``vis_ranks`` queries (top-10 gallery, matches framed green). Under
    ``torchrun`` the ranks share the extraction and rank 0 writes the files.
    """
    dev = setup_device(device)
    verbose = verbose and distributed.is_main()
    state = load_checkpoint(checkpoint)
    dataset = load_dataset(dataset_target, data_dir, verbose=verbose,
                           skip_bad_images=skip_bad_images)
    if not has_test(dataset):
        raise UserError(f"{dataset_target}: no query/ and gallery/ in {dataset.root} to evaluate "
                        "on; add them (Market-1501 names) or export features with "
                        "python -m dualref.extract")
    model = build_model(arch, pretrained=False, features=features, dropout=dropout)
    load_weights(checkpoint, model, state)
    # Eval mode only: BatchNorm groups do not matter here.
    model = prepare_model(model, dev, batch_size, bn_group_size=0,
                          channels_last=channels_last, compile=compile)
    logger.info("Test on the target domain of %s:", dataset_target)
    result, query_feats, gallery_feats = evaluate_model(
        model, dataset, height, width, batch_size, workers, dev, rerank=rerank, amp=amp,
        verbose=verbose, channels_last=channels_last)
    if not distributed.is_main():
        return result
    if results_path:
        record = result.to_dict()
        record.update(checkpoint=os.path.abspath(checkpoint), dataset=dataset_target,
                      epoch=state.get("epoch"))
        write_json(results_path, record)
    if save_features:
        save_features_h5(save_features, query_feats, gallery_feats, dataset.query, dataset.gallery)
    if vis_ranks > 0:
        from ..visualize import save_ranked_lists

        path = vis_path or os.path.join(os.path.dirname(os.path.abspath(checkpoint)),
                                        f"ranked_lists_{dataset_target}.png")
        save_ranked_lists(squared_euclidean(query_feats, gallery_feats), dataset.query,
                          dataset.gallery, path, num_queries=vis_ranks,
                          title=f"{_run_name(checkpoint)} on {dataset_target}")
        logger.info("Saved ranked lists of %d queries to %s", vis_ranks, path)
    return result


def _run_name(checkpoint: str) -> str:
    """``<run folder>/<file>``: enough to tell two runs' pictures apart."""
    path = os.path.abspath(checkpoint)
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
