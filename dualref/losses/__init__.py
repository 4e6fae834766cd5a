"""Losses: label-smoothed cross-entropy, soft triplet, instance-memory spread-out."""
from .softmax import CrossEntropyLabelSmooth
from .spread import SpreadLoss
from .triplet import SoftTripletLoss, soft_triplet_loss

__all__ = ["CrossEntropyLabelSmooth", "SoftTripletLoss", "SpreadLoss", "soft_triplet_loss"]
