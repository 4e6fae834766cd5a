"""Evaluate a checkpoint on a dataset's query/gallery split."""
import logging
import os
from typing import Optional

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
                    verbose: bool = True):
    """Load ``checkpoint`` into a fresh model and print/write its target scores."""
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
    return result
