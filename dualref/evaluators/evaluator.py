"""Query/gallery evaluation: features -> distances -> mAP/CMC, one result type."""
import logging
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..utils.errors import UserError

logger = logging.getLogger(__name__)

Item = Tuple[str, int, int]
CMC_TOPK = (1, 5, 10)


@dataclass
class EvalResult:
    """Retrieval scores (fractions in [0, 1]); ``cmc[k]`` is rank-k accuracy."""

    mAP: float
    cmc: Dict[int, float]
    rerank: bool = False
    num_query: int = 0
    num_gallery: int = 0
    extra: Dict[str, float] = field(default_factory=dict)

    @property
    def top1(self) -> float:
        return self.cmc[1]

    def to_dict(self) -> dict:
        """Plain JSON-ready dict with ``rank1``/``rank5``/``rank10`` keys."""
        out = asdict(self)
        out["cmc"] = {str(k): v for k, v in self.cmc.items()}
        out.update({f"rank{k}": v for k, v in self.cmc.items()})
        return out

    def log(self, log: logging.Logger = logger) -> None:
        """Print the original's lines; people grep logs for them."""
        log.info("Mean AP: {:4.1%}".format(self.mAP))
        log.info("CMC Scores:")
        for k, value in self.cmc.items():
            log.info("  top-{:<4}{:12.1%}".format(k, value))


def squared_euclidean(x: torch.Tensor, y: torch.Tensor, block: int = 4096) -> np.ndarray:
    """Squared Euclidean distances between rows of ``x`` and ``y`` (float32)."""
    x, y = x.float(), y.float()
    y_sq = (y * y).sum(1)
    out = np.empty((x.shape[0], y.shape[0]), dtype=np.float32)
    for start in range(0, x.shape[0], block):
        xb = x[start:start + block]
        dist = (xb * xb).sum(1, keepdim=True) + y_sq[None] - 2.0 * xb @ y.t()
        out[start:start + block] = dist.numpy()
    return out


def _ids_cams(items: Sequence[Item]) -> Tuple[np.ndarray, np.ndarray]:
    return (np.asarray([pid for _, pid, _ in items], dtype=np.int64),
            np.asarray([cam for _, _, cam in items], dtype=np.int64))


def evaluate_distmat(distmat: np.ndarray, query: Sequence[Item], gallery: Sequence[Item],
                     topk: Sequence[int] = CMC_TOPK, rerank: bool = False) -> EvalResult:
    """mAP and CMC (Market protocol: first match break) of a distance matrix."""
    from .metrics import cmc, mean_ap

    query_ids, query_cams = _ids_cams(query)
    gallery_ids, gallery_cams = _ids_cams(gallery)
    mAP = mean_ap(distmat, query_ids, gallery_ids, query_cams, gallery_cams)
    curve = cmc(distmat, query_ids, gallery_ids, query_cams, gallery_cams,
                topk=max(topk), separate_camera_set=False, single_gallery_shot=False,
                first_match_break=True)
    scores = {k: float(curve[min(k, len(curve)) - 1]) for k in topk}
    return EvalResult(mAP=float(mAP), cmc=scores, rerank=rerank,
                      num_query=len(query), num_gallery=len(gallery))


def evaluate_features(query_features: torch.Tensor, gallery_features: torch.Tensor,
                      query: Sequence[Item], gallery: Sequence[Item], rerank: bool = False,
                      k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> EvalResult:
    """Score query features against gallery features (optionally re-ranked)."""
    if len(query) == 0 or len(gallery) == 0:
        raise UserError("evaluation needs a non-empty query and gallery")
    distmat = squared_euclidean(query_features, gallery_features)
    if rerank:
        from .rerank import re_ranking

        logger.info("Applying person re-ranking ...")
        distmat = re_ranking(distmat, squared_euclidean(query_features, query_features),
                             squared_euclidean(gallery_features, gallery_features),
                             k1=k1, k2=k2, lambda_value=lambda_value)
    result = evaluate_distmat(distmat, query, gallery, rerank=rerank)
    result.log()
    return result


def query_gallery_items(query: Sequence[Item], gallery: Sequence[Item]) -> List[Item]:
    """Sorted union of query and gallery items (each image extracted once)."""
    return sorted(set(query) | set(gallery))


def split_features(features: torch.Tensor, items: Sequence[Item], query: Sequence[Item],
                   gallery: Sequence[Item]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pick the query and gallery rows out of features of ``query_gallery_items``."""
    row = {item: i for i, item in enumerate(items)}
    q_rows = torch.as_tensor([row[item] for item in query], dtype=torch.long)
    g_rows = torch.as_tensor([row[item] for item in gallery], dtype=torch.long)
    return features[q_rows], features[g_rows]
