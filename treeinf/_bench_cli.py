"""``treeinf bench run``, ``treeinf bench plan`` and ``treeinf bench report``."""
import sys

#: The smoke preset: two small data sets, two libraries, the fast methods,
#: all five measures on a few test rows. Finishes in minutes on 2 cores.
QUICK = {"datasets": ["concrete", "german_credit"], "models": ["lgb", "xgb"],
         "methods": ["boostin", "trex", "treesim", "target", "random", "loss"],
         "n_test_rows": 3}


def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _selection_args(run):
    """The options that choose the units (shared by ``run`` and ``plan``)."""
    from .eval import FAST_METHODS, MEASURES, MODELS
    run.add_argument("--datasets", type=_csv, default=None,
                     help="comma list of data sets (default: all 22; see "
                          "`python -c 'import treeinf.datasets as d; print(d.list_datasets())'`)")
    run.add_argument("--models", type=_csv, default=None,
                     help=f"comma list from {','.join(MODELS)} (default: all)")
    run.add_argument("--methods", type=_csv, default=None,
                     help=f"comma list (default: {','.join(FAST_METHODS)}); also "
                          "leafinfluence, leafrefit (LI data sets only), loo, subsample, "
                          "dshap; 'all' for every method")
    run.add_argument("--measures", type=_csv, default=list(MEASURES),
                     help=f"comma list from {','.join(MEASURES)},runtime,agreement "
                          "(default: the five measures; 'all' for all seven)")
    run.add_argument("--n-test-rows", type=int, default=None,
                     help="test rows of the single-row measures (default 100)")
    run.add_argument("--fractions", action="append", default=[], metavar="MEASURE=F1,F2",
                     help="override a measure's percentages, e.g. removal=0,1,2")
    run.add_argument("--noise-with-replacement", action="store_true",
                     help="sample fix-mislabelled noise with replacement, as the "
                          "published code did")
    run.add_argument("--quick", action="store_true",
                     help="smoke preset: " + ", ".join(f"{k}={v}" for k, v in QUICK.items())
                     + " (explicit options override it)")


def add_parser(sub):
    """Register ``bench`` with its ``run``, ``plan`` and ``report`` subcommands."""
    bench = sub.add_parser("bench", help="run the evaluation benchmark and report on it")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    run = bsub.add_parser(
        "run", help="compute (or resume) benchmark units into a result directory",
        description="Compute benchmark units; finished units in --out are skipped, so "
                    "an interrupted run resumes where it stopped.")
    _selection_args(run)
    run.add_argument("--out", default="treeinf-results", help="result directory")
    run.add_argument("--data-dir", default=None,
                     help="data set directory (default: $TREEINF_DATA_DIR, then "
                          "~/.cache/treeinf/datasets)")
    run.add_argument("--n-jobs", type=int, default=1, help="local worker processes")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run on a Dask distributed scheduler, e.g. tcp://host:8786")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)
    pl = bsub.add_parser(
        "plan", help="count units and retrainings and estimate CPU-hours, run nothing",
        description="Print, per measure, the number of units, model retrainings and "
                    "an estimate of the CPU-hours the same `bench run` options would "
                    "take, without running anything (see treeinf.eval.estimate for "
                    "the cost models and their assumptions).")
    _selection_args(pl)
    pl.set_defaults(func=_plan)
    rep = bsub.add_parser("report", help="write rank tables (Markdown, CSV) and PNG plots")
    rep.add_argument("--results", default="treeinf-results", help="result directory")
    rep.add_argument("--out", default="treeinf-report", help="report directory")
    rep.add_argument("--no-plots", action="store_true", help="tables only")
    rep.set_defaults(func=_report)
    return bench


def _units(args):
    from . import datasets
    from .eval import EXTRA_MEASURES, FAST_METHODS, MEASURES, METHODS, MODELS, plan
    from .exceptions import DataValidationError
    if args.methods == ["all"]:
        args.methods = list(METHODS)
    if args.measures == ["all"]:
        args.measures = list(MEASURES + EXTRA_MEASURES)
    # explicit options win over the --quick preset, which wins over the defaults
    preset = QUICK if args.quick else {}
    chosen = {key: getattr(args, key) if getattr(args, key) is not None
              else preset.get(key, default)
              for key, default in (("datasets", datasets.list_datasets()),
                                   ("models", list(MODELS)),
                                   ("methods", list(FAST_METHODS)),
                                   ("n_test_rows", 100))}
    fractions = {}
    for item in args.fractions:
        name, _, values = item.partition("=")
        try:
            fractions[name] = [float(v) for v in _csv(values)]
        except ValueError:
            raise DataValidationError(
                f"--fractions {item!r}: expected MEASURE=F1,F2,... with numbers") from None
        if name not in MEASURES or not fractions[name]:
            raise DataValidationError(
                f"--fractions {item!r}: expected MEASURE=F1,F2,... with MEASURE one of "
                f"{', '.join(MEASURES)}")
    return plan(chosen["datasets"], chosen["models"], chosen["methods"], args.measures,
                chosen["n_test_rows"], fractions, args.noise_with_replacement)


def _plan_table(table, by):
    head = (f"{by:<16}{'units':>10}{'retrains':>19}{'retrain CPU-h':>19}"
            f"{'influence CPU-h':>17}{'CPU-h':>19}")
    lines = [head, "-" * len(head)]
    for r in table.itertuples(index=False):
        name = getattr(r, by)
        if name == "total":
            lines.append("-" * len(head))
        lines.append(f"{name:<16}{r.units:>10,}{r.retrains:>19,}{r.retrain_cpu_h:>19,.1f}"
                     f"{r.influence_cpu_h:>17,.1f}{r.cpu_h:>19,.1f}")
    return "\n".join(lines)


def _plan(args):
    from .eval import estimate
    units = _units(args)
    n_sets = len({u["dataset"] for u in units})
    n_models = len({u["model"] for u in units})
    methods = sorted({u["method"] for u in units if u.get("method")}
                     | {m for u in units for m in u.get("methods", [])})
    print(f"treeinf bench plan: {len(units):,} units on {n_sets} data sets x {n_models} "
          f"models, {len(methods)} methods ({', '.join(methods)})")
    print("\nPer measure:\n" + _plan_table(estimate(units, by="measure"), "measure"))
    print("\nPer method:\n" + _plan_table(estimate(units, by="method"), "method"))
    print("\nCounts are exact. CPU-hours are rough (a factor of 2-3 either way): "
          "single-threaded retraining ~ T*K*(a + b*n*d) per library, influence ~ "
          "c*n^p*T*K per method; DShap counts an upper bound of 200 permutations x n "
          "refits per query. Assumptions: docs/benchmark.md, or "
          "`python -c \"import treeinf.eval._cost as c; help(c)\"`. "
          "Wall time ~ CPU-h / workers.")
    return 0


def _run(args):
    from .eval import execute
    units = _units(args)
    print(f"treeinf bench: {len(units)} units -> {args.out}", file=sys.stderr)
    summary = execute(units, args.out, n_jobs=args.n_jobs, scheduler=args.scheduler,
                      data_dir=args.data_dir, progress=not args.quiet)
    print(f"done {summary['done']}, already finished {summary['skipped']}, "
          f"not applicable {summary['unsupported']}, errors {summary['errors']}",
          file=sys.stderr)
    for msg in summary["error_messages"][:20]:
        print("  error: " + msg, file=sys.stderr)
    return 1 if summary["errors"] else 0


def _report(args):
    from .eval import write_report
    written = write_report(args.results, args.out, plots=not args.no_plots)
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(sorted(written)))
    return 0
