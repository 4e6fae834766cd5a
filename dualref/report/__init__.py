"""Tables and figures from finished runs' logs (``python -m dualref.report``)."""
from .table import Run, classify, collect_runs, load_run, results_csv, results_table

__all__ = ["Run", "classify", "collect_runs", "load_run", "results_csv", "results_table"]
