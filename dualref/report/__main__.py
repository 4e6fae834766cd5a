"""``python -m dualref.report LOGS_DIR [...]``: Table 2, mAP curves, pseudo-label quality."""
import argparse
import logging
import os
from typing import Sequence

from ..cli.main import run_main
from ..utils.logging import setup_logging
from .table import BASELINE, BOTH, Run, collect_runs, results_table, write_results_csv, write_text

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Options of the report command."""
    parser = argparse.ArgumentParser(
        prog="python -m dualref.report",
        description="Summarise runs as the paper's Table 2 and plot their curves.")
    parser.add_argument("logs_dirs", nargs="+", metavar="LOGS_DIR",
                        help="a run's logs directory; LABEL=DIR forces its row name")
    parser.add_argument("--out", default="figs", help="folder for the table and figures")
    parser.add_argument("--title", default=None, help="title line above the table")
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="write the table only (no matplotlib needed)")
    parser.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return parser


def label_quality_runs(runs: Sequence[Run]) -> list[Run]:
    """The Dual-Refinement runs (one per task), else the baselines, else one adaptation run."""
    adapt = [r for r in runs if r.stage == "adapt"]
    for wanted in (BOTH, BASELINE):
        chosen = [r for r in adapt if r.label == wanted]
        if chosen:
            return chosen
    return adapt[:1]


def _plots(runs: Sequence[Run], out: str) -> None:
    """Write the figures there is data for; say which ones are skipped."""
    from .plots import map_curve, plot_label_quality, plot_map_curves, quality_curve

    if any(map_curve(r)[0] for r in runs if r.stage == "adapt"):
        plot_map_curves(runs, os.path.join(out, "map_curves.png"))
    else:
        logger.warning("no adaptation run with target evaluations: no map_curves.png")
    chosen = label_quality_runs([r for r in runs if quality_curve(r, "dbscan", "fscore")[0]])
    if chosen:
        plot_label_quality(chosen, os.path.join(out, "label_quality.png"))
    else:
        logger.warning("no run with pseudo-label quality records: no label_quality.png")


def main(args: argparse.Namespace) -> str:
    """Build the table (printed and written) and the figures; return the table."""
    setup_logging()
    runs = collect_runs(args.logs_dirs)
    table = results_table(runs, title=args.title)
    write_text(os.path.join(args.out, "results_table.md"), table)
    write_results_csv(runs, os.path.join(args.out, "results_table.csv"))
    if args.plots:
        _plots(runs, args.out)
    print(table, end="")
    return table


if __name__ == "__main__":
    run_main(build_parser(), main)
