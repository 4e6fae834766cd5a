"""Collect finished runs and lay their scores out as the paper's Table 2."""
import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from ..utils.errors import UserError
from ..utils.io import atomic_open, read_jsonl

logger = logging.getLogger(__name__)

DIRECT, BASELINE, LR, IMSP, BOTH = ("direct transfer", "baseline", "+ LR only",
                                    "+ IM-SP only", "+ LR + IM-SP")
ORDER = (DIRECT, BASELINE, LR, IMSP, BOTH)  # the paper's row order
NEITHER = "+ neither (alpha=0, mu=0)"
SHORT_NAMES = {"market1501": "Market", "dukemtmc": "Duke", "msmt17": "MSMT"}
METRICS = (("mAP", "mAP"), ("R1", "rank1"), ("R5", "rank5"), ("R10", "rank10"))


@dataclass
class Run:
    """One logs directory: its row label, task, target scores and per-epoch metrics."""

    path: str
    label: str
    stage: str  # "pretrain" or "adapt"
    source: str
    target: str
    result: Optional[dict]  # the EVAL shown in the table (None: no score yet)
    config: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)

    @property
    def task(self) -> str:
        """Column name such as ``Duke->Market``."""
        return f"{short_name(self.source)}->{short_name(self.target)}"

    @property
    def name(self) -> str:
        """The directory's base name, used to tell apart runs with the same label."""
        return Path(self.path).name


def short_name(dataset: str) -> str:
    """``market1501`` -> ``Market``; unknown names are kept."""
    return SHORT_NAMES.get(dataset, dataset or "?")


def classify(config: dict) -> str:
    """Table 2 row of a run from its options (see the variants table in docs/method.md)."""
    if "milestones" in config or "warmup_step" in config:  # pretraining options
        return DIRECT
    alpha, mu = float(config.get("alpha") or 0.0), float(config.get("mu") or 0.0)
    if config.get("norm_features") is False:
        return BASELINE
    if alpha > 0 and mu > 0:
        return BOTH
    if alpha > 0:
        return LR
    if mu > 0:
        return IMSP
    return BASELINE if config.get("epochs_decay") is None else NEITHER


def _read_json(path: Path) -> Optional[dict]:
    """A JSON file's content, None when absent; a broken file is the user's to fix."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def _best_target(metrics: Sequence[dict]) -> Optional[dict]:
    """Highest-mAP target evaluation among the epoch records (an unfinished run)."""
    evals = [r["target"] for r in metrics if isinstance(r.get("target"), dict)]
    return max(evals, key=lambda e: e["mAP"]) if evals else None


def load_run(path: Union[str, os.PathLike], label: Optional[str] = None) -> Run:
    """Read one logs directory; raise :class:`UserError` if it holds no run."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{root}: no such logs directory")
    results = _read_json(root / "results.json") or {}
    options = _read_json(root / "options.json") or {}
    metrics = read_jsonl(root / "metrics.jsonl")
    if not results and not options and not metrics:
        raise UserError(f"{root}: no results.json, options.json or metrics.jsonl in it")
    config = {**options, **results.get("config", {})}
    pretrain = "direct_transfer" in results or any(r.get("stage") == "pretrain" for r in metrics)
    stage = "pretrain" if pretrain else "adapt"
    source, target = config.get("dataset_source", ""), config.get("dataset_target", "")
    if pretrain:
        result = results.get("direct_transfer")
        if result is None:  # the final record of metrics.jsonl holds the same evaluation
            finals = [r["target"] for r in metrics if "target" in r]
            result = finals[-1] if finals else None
    else:
        result = results.get("best") or _read_json(root / f"results_test_{target}.json")
        result = result or _best_target(metrics)
    row = label or (DIRECT if pretrain else classify(config))
    return Run(str(root), row, stage, source, target, result, config, metrics)


def parse_run_arg(arg: str) -> tuple[Optional[str], str]:
    """``label=path`` -> (label, path); a plain path -> (None, path)."""
    if "=" in arg and not Path(arg).exists():
        label, path = arg.split("=", 1)
        return label.strip() or None, path
    return None, arg


def collect_runs(dirs: Iterable[Union[str, os.PathLike]]) -> list[Run]:
    """Load every directory (``label=path`` forces a row name); duplicates get the dir name."""
    runs: list[Run] = []
    for item in dirs:
        label, path = parse_run_arg(os.fspath(item))
        run = load_run(path, label)
        if any(r.label == run.label and r.task == run.task for r in runs):
            run.label = f"{run.label} ({run.name})"
        runs.append(run)
    if not runs:
        raise UserError("no logs directories given")
    return runs


def row_labels(runs: Sequence[Run]) -> list[str]:
    """Row names: the paper's rows first, in its order, then the others as given."""
    found = [r.label for r in runs]
    extra = [label for i, label in enumerate(found) if label not in ORDER
             and label not in found[:i]]
    return [label for label in ORDER if label in found] + extra


def tasks(runs: Sequence[Run]) -> list[str]:
    """Source->target columns in first-seen order."""
    return list(dict.fromkeys(r.task for r in runs))


def format_cell(result: Optional[dict]) -> str:
    """``mAP / R1 / R5 / R10`` in percent with one decimal; ``-`` when missing."""
    if not result:
        return "-"
    return " / ".join(f"{100 * float(result[key]):.1f}" for _, key in METRICS)


def _lookup(runs: Sequence[Run]) -> dict:
    """(label, task) -> EVAL."""
    return {(r.label, r.task): r.result for r in runs}


def results_table(runs: Sequence[Run], title: Optional[str] = None) -> str:
    """Markdown table: one row per variant, one ``mAP / R1 / R5 / R10`` column per task."""
    cols, cells = tasks(runs), _lookup(runs)
    lines = [f"**{title}**", ""] if title else []
    lines.append("| method | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for label in row_labels(runs):
        row = [format_cell(cells.get((label, task))) for task in cols]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines += ["", "Scores in %: mAP / R1 / R5 / R10 on the target test set."]
    return "\n".join(lines) + "\n"


def results_csv(runs: Sequence[Run]) -> str:
    """The same scores in long form: one line per (method, task), percent values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "task", *[name for name, _ in METRICS], "logs_dir"])
    order = {label: i for i, label in enumerate(row_labels(runs))}
    for run in sorted(runs, key=lambda r: (order[r.label], tasks(runs).index(r.task))):
        values = ([f"{100 * float(run.result[key]):.1f}" for _, key in METRICS]
                  if run.result else [""] * len(METRICS))
        writer.writerow([run.label, run.task, *values, run.path])
    return buffer.getvalue()


def write_text(path: Union[str, os.PathLike], text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_results_csv(runs: Sequence[Run], path: Union[str, os.PathLike]) -> None:
    """Write :func:`results_csv` atomically."""
    write_text(path, results_csv(runs))
