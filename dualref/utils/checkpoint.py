"""Checkpoints: atomic saves, loads that never run code, tolerant state-dict copies.

Files stay readable by the authors' code: ``{'state_dict', 'epoch', 'best_mAP'}``
with ``module.``-prefixed keys (see :func:`checkpoint_for_release`).
"""
import _compat_pickle
import importlib
import io
import logging
import os
import pickle
import re
import shutil
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch import nn

from .device import unwrap
from .errors import UserError
from .io import atomic_open

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
BEST_NAME = "model_best.pth.tar"


def save_checkpoint(state: Dict[str, Any], is_best: bool, fpath: PathLike) -> Path:
    """Write ``state`` to ``fpath`` atomically; also to ``model_best.pth.tar`` when best."""
    fpath = Path(fpath)
    with atomic_open(fpath, "wb") as handle:
        torch.save(state, handle)
    if is_best:
        with open(fpath, "rb") as src, atomic_open(fpath.parent / BEST_NAME, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return fpath


def load_checkpoint(fpath: PathLike) -> Dict[str, Any]:
    """Load a checkpoint dict on the CPU; refuses any pickle that would run code."""
    fpath = Path(fpath)
    if not fpath.is_file():
        raise UserError(f"checkpoint {fpath}: file not found")
    try:
        state = _safe_torch_load(fpath)
    except UnsafePickleError as err:
        raise UserError(f"refusing to load {fpath}: unpickling it would call {err}, "
                        "which could execute code") from err
    except PermissionError as err:
        raise UserError(f"checkpoint {fpath}: cannot read the file (permission denied)") from err
    except (EOFError, RuntimeError, OSError) as err:  # torch reports a cut-off zip as any of these
        raise UserError(f"checkpoint {fpath}: file is truncated or corrupted ({_first_line(err)})") from err
    except Exception as err:  # pickle/zip/key errors from arbitrary bytes
        global_name = _unsafe_global(str(err)) or _global_in_raw_pickle(fpath)
        if global_name:
            raise UserError(f"refusing to load {fpath}: unpickling it would call {global_name}, "
                            "which could execute code") from err
        raise UserError(f"checkpoint {fpath}: not a torch checkpoint ({type(err).__name__})") from err
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {fpath}: expected a dict, found {type(state).__name__}")
    logger.info("loaded checkpoint %s", fpath)
    return state


def _safe_torch_load(fpath: Path) -> Any:
    """torch.load with weights_only where it can name numpy globals, else a restricted unpickler."""
    with warnings.catch_warnings():
        # torch warns about pickle protocols of old files before refusing or loading them.
        warnings.filterwarnings("ignore", message=".*pickle protocol.*")
        if hasattr(torch.serialization, "safe_globals") and torch.__version__ >= (2, 6):
            entries = [(obj, name) for name, obj in allowed_numpy_globals().items()]
            with torch.serialization.safe_globals(entries):
                return torch.load(fpath, map_location="cpu", weights_only=True)
        return _restricted_torch_load(fpath)


def _global_in_raw_pickle(fpath: Path) -> Optional[str]:
    """The first non-allowed global a plain pickle file names, read without running it."""
    import pickletools

    allowed = set(allowed_numpy_globals()) | {"collections.OrderedDict"}
    strings: List[str] = []
    try:
        with open(fpath, "rb") as handle:
            for opcode, arg, _ in pickletools.genops(handle):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                    strings.append(arg)
                    continue
                name = None
                if opcode.name == "GLOBAL":
                    name = arg.replace(" ", ".")
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    name = f"{strings[-2]}.{strings[-1]}"
                if name and name not in allowed and not name.startswith("torch."):
                    return name
    except Exception:  # not a pickle stream at all: nothing to report
        return None
    return None


def _restricted_torch_load(fpath: Path) -> Any:
    """torch < 2.6: weights_only cannot allow-list numpy by name; gate globals ourselves."""
    return torch.load(fpath, map_location="cpu", weights_only=False,
                      pickle_module=restricted_pickle_module())


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list; the message is its name."""


def allowed_numpy_globals() -> Dict[str, Callable]:
    """numpy names that old checkpoints use (``best_mAP`` scalars, RNG state arrays).

    Rebuilding a numpy scalar or array only copies bytes; the files of the
    original code (numpy 1.x) spell the module ``numpy.core``, numpy 2
    ``numpy._core``, so both spellings map to the same objects.
    """
    import numpy as np
    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core")
                                         else "numpy.core.multiarray")
    table: Dict[str, Callable] = {"numpy.dtype": np.dtype, "numpy.ndarray": np.ndarray}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[f"{module}.scalar"] = multiarray.scalar
        table[f"{module}._reconstruct"] = multiarray._reconstruct
    for code in "?bBhHiIlLqQefdgFD":  # dtype classes (numpy >= 1.25 pickles their state by class)
        cls = type(np.dtype(code))
        table[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return table


def _allowed_globals() -> Dict[str, Callable]:
    """Everything the restricted unpickler may look up: tensors, containers, numpy."""
    table = dict(allowed_numpy_globals())
    table.update({
        "collections.OrderedDict": __import__("collections").OrderedDict,
        "_codecs.encode": __import__("_codecs").encode,  # protocol 2 spells bytes this way
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
        "torch.Size": torch.Size,
        "torch.nn.parameter.Parameter": nn.Parameter,
        "torch._tensor._rebuild_from_type_v2": torch._tensor._rebuild_from_type_v2,
    })
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
                 "_rebuild_parameter_with_state"):
        if hasattr(torch._utils, name):
            table[f"torch._utils.{name}"] = getattr(torch._utils, name)
    for name in dir(torch):  # dtypes and typed storage classes (legacy and zip formats)
        obj = getattr(torch, name, None)
        if isinstance(obj, torch.dtype) or (isinstance(obj, type) and name.endswith("Storage")):
            table[f"torch.{name}"] = obj
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals (the stdlib's recipe)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 writes Python 2 names (``__builtin__.set``); map them back as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = self._allowed.get(f"{module}.{name}")
        if obj is None:
            raise UnsafePickleError(f"{module}.{name}")
        return obj


def restricted_pickle_module() -> types.ModuleType:
    """A ``pickle_module`` for torch.load whose unpickler refuses unknown globals."""
    module = types.ModuleType("dualref_restricted_pickle")
    module.Unpickler = _RestrictedUnpickler
    module.load = lambda file, **kwargs: _RestrictedUnpickler(file, **kwargs).load()
    module.loads = lambda data, **kwargs: _RestrictedUnpickler(io.BytesIO(data), **kwargs).load()
    return module


def _unsafe_global(message: str) -> str:
    """The global a weights_only failure refused, or '' when the failure is something else."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    if match:
        return match.group(1)
    return "an unrecognised function" if "unrecognized function" in message else ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:120] if text else type(err).__name__


@dataclass
class CopyReport:
    """What :func:`copy_state_dict` did, key by key."""

    copied: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: List[str] = field(default_factory=list)  # in the checkpoint, not in the model
    mismatched: List[str] = field(default_factory=list)  # same name, other shape


@torch.no_grad()
def copy_state_dict(state_dict: Dict[str, Any], model: nn.Module,
                    strip_prefix: str = "module.") -> CopyReport:
    """Copy every tensor whose name and shape match into ``model``; report the rest."""
    model = unwrap(model)
    target = model.state_dict()
    report = CopyReport()
    for name, value in state_dict.items():
        if strip_prefix and name.startswith(strip_prefix):
            name = name[len(strip_prefix):]
        if name not in target:
            report.unexpected.append(name)
        elif not torch.is_tensor(value) or value.shape != target[name].shape:
            report.mismatched.append(name)
            logger.warning("checkpoint %s has shape %s, model needs %s: skipped", name,
                           tuple(getattr(value, "shape", ())), tuple(target[name].shape))
        else:
            target[name].copy_(value)  # state_dict tensors share storage with the model
            report.copied.append(name)
    seen = set(report.copied) | set(report.mismatched)
    report.missing = [name for name in target if name not in seen]
    if report.missing:
        logger.warning("missing in checkpoint (left as initialised): %s", ", ".join(report.missing))
    if report.unexpected:
        logger.warning("unexpected in checkpoint (ignored): %s", ", ".join(report.unexpected))
    logger.info("copied %d of %d tensors", len(report.copied), len(target))
    return report


def checkpoint_for_release(model: nn.Module, epoch: int, best_mAP: float) -> Dict[str, Any]:
    """The authors' checkpoint dict (``module.`` keys, as from their DataParallel model).

    Callers may add keys (optimizer, scheduler, rng, memory, eps); the authors'
    code reads only these three.
    """
    state = unwrap(model).state_dict()
    return {
        "state_dict": {f"module.{name}": value.detach().cpu() for name, value in state.items()},
        "epoch": int(epoch),
        "best_mAP": float(best_mAP),
    }
