"""Losses: label-smoothed cross-entropy, soft triplet, instance-memory spread-out; memories."""
from .memory import Memory, MemoryFactory, SpreadOutMemory, spread_out_factory
from .softmax import CrossEntropyLabelSmooth
from .spread import SpreadLoss
from .triplet import SoftTripletLoss, soft_triplet_loss

__all__ = ["CrossEntropyLabelSmooth", "Memory", "MemoryFactory", "SoftTripletLoss", "SpreadLoss",
           "SpreadOutMemory", "soft_triplet_loss", "spread_out_factory"]
