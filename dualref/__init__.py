"""dualref: Dual-Refinement for unsupervised domain adaptive person re-ID.

Data flow: datasets -> loaders -> models -> features -> clustering
(Jaccard -> DBSCAN -> refined labels) -> losses -> trainers -> evaluators
-> checkpoints.  Sub-packages are imported on demand.
"""

__version__ = "0.1.0"
