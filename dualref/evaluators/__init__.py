"""Evaluation: distances, mAP/CMC (Market protocol), k-reciprocal re-ranking."""
from .evaluator import EvalResult, evaluate_distmat, evaluate_features
from .metrics import NoValidQueryError, cmc, mean_ap
from .rerank import re_ranking

__all__ = ["EvalResult", "NoValidQueryError", "cmc", "evaluate_distmat", "evaluate_features",
           "mean_ap", "re_ranking"]
