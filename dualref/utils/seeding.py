"""Seeding and RNG state capture (python, numpy, torch CPU/CUDA) for reproducible, resumable runs."""
import logging
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally force deterministic cuDNN kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    logger.debug("seeded python/numpy/torch with %d (deterministic=%s)", seed, deterministic)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader hook: derive python/numpy seeds from the worker's torch seed."""
    # torch seeds each worker with base_seed + worker_id, base_seed drawn from the
    # loader's generator; reseeding from it keeps python/numpy draws tied to that
    # generator whatever the torch version does by itself.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Every RNG state as tensors, ints and lists, so ``torch.load(weights_only=True)`` accepts it."""
    version, mt_state, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": [int(v) for v in mt_state], "gauss_next": gauss_next},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`get_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"]), py["gauss_next"]))
    npst = state["numpy"]
    keys = np.asarray(npst["keys"].cpu().numpy() if torch.is_tensor(npst["keys"]) else npst["keys"], dtype=np.uint32)
    np.random.set_state((npst["name"], keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state:
        if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            logger.warning("CUDA RNG state not restored: saved for %d GPU(s), %d visible now",
                           len(state["cuda"]), torch.cuda.device_count() if torch.cuda.is_available() else 0)
