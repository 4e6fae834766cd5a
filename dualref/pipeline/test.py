"""Evaluate a checkpoint on a dataset's query/gallery split."""
import logging
import os
from typing import Optional

from ..evaluators.evaluator import squared_euclidean
from ..utils.checkpoint import load_checkpoint
from ..utils.device import place_model, resolve_device
from ..utils.io import write_json
from .common import build_model, evaluate_model, load_dataset, save_features_h5
from .state import load_weights

logger = logging.getLogger(__name__)


def test_checkpoint(checkpoint: str, dataset_target: str, data_dir: str, arch: str = "resnet50",
                    features: int = 0, dropout: float = 0.0, height: int = 256,
                    width: int = 128, batch_size: int = 256, workers: int = 4,
                    device: str = "auto", amp: Optional[str] = None, rerank: bool = False,
                    save_features: Optional[str] = None, results_path: Optional[str] = None,
                    vis_ranks: int = 0, vis_path: Optional[str] = None, verbose: bool = True):
    """Load ``checkpoint`` into a fresh model and print/write its target scores.

    Optionally saves the features (HDF5) and a ranked-list picture of
    ``vis_ranks`` queries (top-10 gallery, matches framed green).
    """
    dev = resolve_device(device)
    state = load_checkpoint(checkpoint)
    dataset = load_dataset(dataset_target, data_dir, verbose=verbose)
    model = build_model(arch, pretrained=False, features=features, dropout=dropout)
    load_weights(checkpoint, model, state)
    model = place_model(model, dev)
    logger.info("Test on the target domain of %s:", dataset_target)
    result, query_feats, gallery_feats = evaluate_model(
        model, dataset, height, width, batch_size, workers, dev, rerank=rerank, amp=amp,
        verbose=verbose)
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
                          title=f"{os.path.basename(checkpoint)} on {dataset_target}")
        logger.info("Saved ranked lists of %d queries to %s", vis_ranks, path)
    return result
