"""Stage 2 baseline: DBSCAN pseudo-labels, CE + triplet (pooled feature, constant lr by default)."""
from dualref.cli import drive
from dualref.configs import BaselineConfig
from dualref.pipeline.adapt import adapt

if __name__ == "__main__":
    drive(BaselineConfig, "Clustering baseline training", adapt)
