"""The evaluation benchmark of Brophy, Hammoudeh & Lowd (JMLR 2023).

Usable from Python as well as through ``treeinf bench``. Units of work are
plain dicts; each is computed by :func:`run_unit` and stored by
:class:`ResultStore` as one JSON file. See BENCHMARK.md in the project's
shared inputs and ``docs/benchmark.md`` for the protocols.

Examples
--------
Needs the benchmark's data files (see :mod:`treeinf.datasets`).

>>> from treeinf import eval as tev
>>> units = tev.plan(["concrete"], models=["lgb"], methods=["boostin", "random"],
...                  measures=["removal"], n_test_rows=2)
>>> len(units)                      # 2 methods x 2 test rows
4
>>> tev.execute(units, "results/", progress=False)["done"]
4
>>> sorted(tev.write_report("results/", "report/", plots=False))
['curves.csv', 'ranks.csv', 'ranks.md']
"""
from ._aggregate import (agreement_table, curves, dataset_ranks, rank_table,
                         relative_magnitude, row_table, runtime_table)
from ._protocol import (CHECKPOINTS, EXTRA_MEASURES, FRACTIONS, MEASURES,
                        PRIMARY_METRIC, ROW_MEASURES, SET_MEASURES, corrupted_labels,
                        edit_target, n_edited, noisy_rows, row_losses, run_unit,
                        set_metrics, test_row_order, validation_split)
from ._report import rank_markdown, write_report
from ._run import execute, plan, run
from ._settings import (FAST_METHODS, METHODS, MODELS, PAPER_SETTINGS, SLOW_METHODS,
                        make_method, make_model, model_params)
from ._store import ResultStore, unit_key

__all__ = [
    "CHECKPOINTS", "EXTRA_MEASURES", "FAST_METHODS", "FRACTIONS", "MEASURES", "METHODS",
    "MODELS", "PAPER_SETTINGS", "PRIMARY_METRIC", "ROW_MEASURES", "SET_MEASURES",
    "SLOW_METHODS", "ResultStore", "agreement_table", "corrupted_labels", "curves",
    "dataset_ranks", "edit_target", "execute", "make_method", "make_model",
    "model_params", "n_edited", "noisy_rows", "plan", "rank_markdown", "rank_table",
    "relative_magnitude", "row_losses", "row_table", "run", "run_unit", "runtime_table",
    "set_metrics", "test_row_order", "unit_key", "validation_split", "write_report",
]
