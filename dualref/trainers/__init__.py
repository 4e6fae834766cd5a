"""Trainers: each implements one training step and returns named loss terms."""
from .base import Trainer
from .cluster import ClusterTrainer, LossTerm, LossWeights
from .pretrain import PreTrainer

__all__ = ["Trainer", "PreTrainer", "ClusterTrainer", "LossTerm", "LossWeights"]
