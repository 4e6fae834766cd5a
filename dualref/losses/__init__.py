"""Losses: label-smoothed cross-entropy, soft triplet, instance-memory spread-out."""
