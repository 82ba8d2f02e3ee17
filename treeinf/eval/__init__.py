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
['curves.csv', 'missing.csv', 'ranks.csv', 'ranks.md']
"""
from ._aggregate import (INTERVAL_NOTE, RANK_TABLE_COLUMNS, agreement_table, cell_ranks,
                         curves, dataset_ranks, missing_cells, missing_table,
                         rank_interval, rank_table, relative_magnitude, row_table,
                         runtime_table)
from ._protocol import (CHECKPOINTS, EXTRA_MEASURES, FRACTIONS, MEASURES,
                        PRIMARY_METRIC, ROW_COUNTS, ROW_MEASURES, SET_MEASURES, corrupted_labels,
                        edit_target, n_edited, noisy_rows, row_losses, run_unit,
                        set_metrics, test_row_order, validation_split)
from ._cost import estimate
from ._report import rank_markdown, write_report
from ._run import execute, plan, resolve_data_dirs, run
from ._settings import (FAST_METHODS, LEAF_ATOL, METHODS, MODELS, PAPER_SETTINGS,
                        SLOW_METHODS, make_method, make_model, method_params, model_params)
from ._store import ResultStore, unit_key

__all__ = [
    "CHECKPOINTS", "EXTRA_MEASURES", "FAST_METHODS", "FRACTIONS", "INTERVAL_NOTE",
    "LEAF_ATOL", "MEASURES", "METHODS", "MODELS", "PAPER_SETTINGS", "PRIMARY_METRIC",
    "RANK_TABLE_COLUMNS", "ROW_COUNTS", "ROW_MEASURES", "SET_MEASURES", "SLOW_METHODS",
    "ResultStore", "agreement_table", "cell_ranks", "corrupted_labels", "curves",
    "dataset_ranks", "edit_target", "estimate", "execute", "make_method", "make_model",
    "method_params", "missing_cells", "missing_table", "model_params", "n_edited",
    "noisy_rows", "plan", "rank_interval", "rank_markdown", "rank_table",
    "relative_magnitude", "resolve_data_dirs", "row_losses", "row_table", "run", "run_unit",
    "runtime_table", "set_metrics", "test_row_order", "unit_key", "validation_split",
    "write_report",
]
