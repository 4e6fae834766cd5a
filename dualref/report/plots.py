"""Figures of a set of runs: target mAP per epoch and pseudo-label quality per epoch."""
import io
import logging
import os
from typing import Sequence, Union

from ..utils.errors import UserError
from ..utils.io import atomic_open
from .table import ORDER, Run, tasks

logger = logging.getLogger(__name__)

QUALITY = (("precision", "Precision"), ("recall", "Recall"), ("fscore", "F-score"))


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (an optional extra)."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("plots need matplotlib: pip install matplotlib "
                        "(or pip install -e .[plots])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Union[str, os.PathLike]) -> None:
    """Render ``fig`` to PNG in memory, then write it atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    logger.info("wrote %s", path)


def _style(ax, title: str, ylabel: str) -> None:
    """Common axes dressing: title, integer epochs, grid."""
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _sort_key(run: Run) -> tuple:
    """Paper order first, other labels after, as given."""
    return (ORDER.index(run.label) if run.label in ORDER else len(ORDER),)


def map_curve(run: Run) -> tuple[list[int], list[float]]:
    """(epochs, target mAP in %) from a run's evaluated epoch records."""
    points = [(int(r["epoch"]), 100 * float(r["target"]["mAP"])) for r in run.metrics
              if r.get("stage", "adapt") == "adapt" and isinstance(r.get("target"), dict)]
    return [e for e, _ in points], [m for _, m in points]


def plot_map_curves(runs: Sequence[Run], path: Union[str, os.PathLike]) -> None:
    """Target mAP per epoch of each adaptation variant, one panel per task."""
    adapt = sorted((r for r in runs if r.stage == "adapt"), key=_sort_key)
    cols = [t for t in tasks(runs) if any(r.task == t for r in adapt)]
    if not cols:
        raise UserError("no adaptation run with per-epoch target evaluations to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(cols), figsize=(6 * len(cols), 4.5), squeeze=False)
    for ax, task in zip(axes[0], cols):
        for run in (r for r in adapt if r.task == task):
            epochs, values = map_curve(run)
            ax.plot(epochs, values, marker="o", markersize=3, label=run.label)
        for run in (r for r in runs if r.stage == "pretrain" and r.task == task and r.result):
            ax.axhline(100 * float(run.result["mAP"]), color="grey", linestyle=":",
                       label=run.label)
        _style(ax, f"{task}: target mAP per epoch", "mAP (%)")
        ax.legend(loc="best", fontsize="small")
    _save(fig, path)


def quality_curve(run: Run, kind: str, measure: str) -> tuple[list[int], list[float]]:
    """(epochs, ``kind``_``measure`` in %) for kind 'dbscan' or 'refined'."""
    key = f"{kind}_{measure}"
    points = [(int(r["epoch"]), 100 * float(r[key])) for r in run.metrics
              if r.get("stage", "adapt") == "adapt" and r.get(key) is not None]
    return [e for e, _ in points], [v for _, v in points]


def plot_label_quality(run_or_runs: Union[Run, Sequence[Run]],
                       path: Union[str, os.PathLike]) -> None:
    """Pairwise precision / recall / F-score of the pseudo-labels per epoch.

    DBSCAN labels are solid lines, refined labels dashed, one colour per run.
    """
    runs = [run_or_runs] if isinstance(run_or_runs, Run) else list(run_or_runs)
    runs = [r for r in runs if quality_curve(r, "dbscan", "fscore")[0]]
    if not runs:
        raise UserError("no run with pseudo-label quality records (dbscan_fscore) to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(QUALITY), figsize=(5 * len(QUALITY), 4.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        name = run.label if len(runs) == 1 else f"{run.label}, {run.task}"
        for ax, (measure, _) in zip(axes[0], QUALITY):
            ax.plot(*quality_curve(run, "dbscan", measure), color=colour, linestyle="-",
                    label=f"DBSCAN labels ({name})")
            epochs, values = quality_curve(run, "refined", measure)
            if epochs:
                ax.plot(epochs, values, color=colour, linestyle="--",
                        label=f"refined labels ({name})")
    for ax, (_, title) in zip(axes[0], QUALITY):
        _style(ax, f"pseudo-label {title}", f"{title} (%)")
    axes[0][-1].legend(loc="best", fontsize="small")
    tasks_shown = ", ".join(dict.fromkeys(r.task for r in runs))
    fig.suptitle(f"Pseudo-label quality on the target domain ({tasks_shown})")
    _save(fig, path)
