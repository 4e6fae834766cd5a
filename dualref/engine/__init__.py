"""The training loop every stage shares (loop) and its run checkpoints (state)."""
