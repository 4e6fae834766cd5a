"""Cluster centres: the mean feature of each pseudo-identity (the classifier's new weights)."""
import numpy as np
import torch


def cluster_centers(features: torch.Tensor, labels: np.ndarray, num_clusters: int) -> torch.Tensor:
    """Mean feature of each cluster (rows 0..C-1), outliers ignored."""
    mask = torch.from_numpy(labels >= 0)
    index = torch.from_numpy(labels[labels >= 0]).long()
    sums = torch.zeros(num_clusters, features.shape[1]).index_add_(0, index, features[mask].float())
    counts = torch.bincount(index, minlength=num_clusters).clamp(min=1).unsqueeze(1)
    return sums / counts
