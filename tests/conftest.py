"""Shared pytest setup: deterministic, CPU-only, quiet."""
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
