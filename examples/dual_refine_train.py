"""Dual-Refinement: off-line label refinement + instance-memory spread-out loss.

The paper's ablations are option settings: ``--alpha 0.5 --mu 0`` (LR only),
``--alpha 0 --mu 0.1`` (IM-SP only), ``--alpha 0.5 --mu 0.1`` (both).
"""
from dualref.cli import drive
from dualref.configs import AdaptConfig
from dualref.pipeline.adapt import adapt

if __name__ == "__main__":
    drive(AdaptConfig, "Dual-Refinement training", adapt)
