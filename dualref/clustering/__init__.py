"""Pseudo-labelling: k-reciprocal Jaccard distance, DBSCAN, label refinement."""
