"""Evaluation: mAP, CMC, k-reciprocal re-ranking."""
