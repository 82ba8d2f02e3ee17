"""``treeinf explain``: training-data influence from files on the command line.

The command reads a model file (LightGBM text, XGBoost JSON/UBJ, CatBoost
``.cbm``/JSON, or a trusted joblib file of a scikit-learn estimator or
pipeline), the training data (CSV or Parquet) and the rows to explain, and
reports for each query row its most helpful and most harmful training rows.

The flow is one way: load the model -> parse it (unverified) to learn its
feature names and categorical columns -> read the files with every column
typed as the model expects -> fit the explainer (which parses and *verifies*
the model on the training data) -> top-k influence of the query rows, in
chunks under a progress bar -> a table on the terminal and an optional
CSV/JSON file. Nothing here is imported by the library itself.
"""
import argparse
import ast
import json
import math
import os
import re
import sys
import time

from . import exceptions as err

__all__ = ["add_explain_parser", "run_explain", "load_model", "parse_row_ids"]

#: method name (lower case) -> estimator class name in treeinf
METHODS = {name.lower(): name for name in (
    "BoostIn", "LeafInfluence", "LeafRefit", "TREX", "TreeSim", "InputSim",
    "Target", "Random", "LOO", "SubSample", "DShap")}
_RETRAINING = ("LOO", "SubSample", "DShap")

#: pandas' default missing-value markers (applied to every column but the
#: raw-string categorical columns of CatBoost models)
_NA_TOKENS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
              "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
              "nan", "null"]
_JOBLIB_EXT = (".joblib", ".pkl", ".pickle")
_OUTPUT_EXT = (".csv", ".json")
_FIXED_COLUMNS = ("query_row", "kind", "rank", "train_row", "influence")
_FORMATS = ("LightGBM text model (Booster.save_model, e.g. model.txt); XGBoost JSON or "
            "UBJSON model (save_model to .json/.ubj); CatBoost binary (.cbm) or JSON "
            "model (save_model); a joblib/pickle file (.joblib, .pkl, .pickle) of a "
            "scikit-learn estimator or Pipeline")
_TERMINAL_ROWS = 20      # query rows printed when an --output file gets the rest
_TERMINAL_COLUMNS = 6    # training-row value columns printed besides the target


# ---------------------------------------------------------------- argparse
_DESCRIPTION = """\
Explain a tree model's predictions by its training rows: for every query row,
the training rows whose removal would most increase (helpful) or decrease
(harmful) the query row's loss, computed with one of treeinf's methods.

Row ids are 0-based positions among the data rows of the training file (the
header is not a row; an index column in the file is not used as the id).
The query rows are either the rows of a CSV/Parquet file with the training
file's feature columns and the target column (the label the loss is measured
against), or training rows given by id with --query-rows.

Columns are matched to the model's feature names and typed as the model
expects: categorical columns become pandas categoricals with exactly the
category lists stored in the model (LightGBM pandas_categorical, XGBoost
category names), CatBoost categorical columns are read as the raw strings of
the file, everything else is read as numbers (pandas' usual missing-value
markers such as an empty cell or 'nan' are NaN). A model without feature
names takes the file's columns in order, except the target and weight.
"""

_EPILOG = """\
output file columns: query_row (row id in the --query file, or the training
row id with --query-rows), kind (helpful/harmful), rank (1 = strongest),
train_row, influence (positive = helpful), then every column of the training
row as read (a column named like one of the first five is prefixed 'train_').
Records are ordered by query row, then helpful before harmful, then rank.

example:
  treeinf explain --model model.txt --train train.csv --target y \\
      --query-rows 0,10-12 --top 5 --output influence.csv
"""


def add_explain_parser(subparsers):
    """Register the ``explain`` subcommand on an argparse subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``explain`` parser (its ``func`` default is :func:`run_explain`).
    """
    p = subparsers.add_parser(
        "explain", help="which training rows helped or hurt given predictions (from files)",
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="PATH",
                   help="model file: " + _FORMATS + ". The format is detected from "
                        "the file's content; joblib/pickle files are loaded only "
                        "with one of those extensions. WARNING: loading a "
                        "joblib/pickle file executes code stored in it; use only "
                        "files you trust.")
    p.add_argument("--train", required=True, metavar="PATH",
                   help="the data the model was trained on: .csv (optionally "
                        "compressed, e.g. .csv.gz) or .parquet")
    p.add_argument("--target", required=True, metavar="COLUMN",
                   help="target column of the training (and query) file; class "
                        "labels as the model knows them (0..K-1 for native "
                        "Booster files)")
    p.add_argument("--weight", metavar="COLUMN",
                   help="sample-weight column of the training file, if the model "
                        "was trained with weights")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", metavar="PATH",
                   help="CSV/Parquet file of the rows to explain, with the feature "
                        "columns and the target column")
    q.add_argument("--query-rows", metavar="IDS",
                   help="explain training rows instead: comma-separated row ids "
                        "and inclusive ranges, e.g. '3,10-12' = rows 3, 10, 11, 12")
    p.add_argument("--method", default="boostin", type=_method_name, metavar="NAME",
                   help="influence method, case-insensitive: "
                        + ", ".join(METHODS) + " (default: boostin). The "
                        "retraining methods (loo, subsample, dshap) need a "
                        "scikit-learn-API model (a joblib file).")
    p.add_argument("--method-param", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor parameter of the method, repeatable, e.g. "
                        "--method-param update_set=0 (VALUE is read as a Python "
                        "literal, else as a string)")
    p.add_argument("--top", type=int, default=5, metavar="K",
                   help="training rows reported per query row and kind (default: 5)")
    p.add_argument("--kind", choices=("helpful", "harmful", "both"), default="both",
                   help="which training rows to report (default: both)")
    p.add_argument("--output", metavar="PATH",
                   help="write one record per (query row, training row) to a .csv "
                        "or .json file (a list of objects; missing values are null)")
    p.add_argument("--n-jobs", type=int, default=None, metavar="N",
                   help="threads (or workers for retraining methods); default: all cores")
    p.add_argument("--quiet", action="store_true",
                   help="no progress messages or progress bars on stderr")
    p.set_defaults(func=run_explain)
    return p


def _method_name(value):
    key = value.strip().lower()
    if key == "loss":
        raise argparse.ArgumentTypeError(
            "'loss' defines only each training row's influence on its own loss, not "
            "on other rows, so it cannot explain query rows; choose one of: "
            + ", ".join(METHODS))
    if key not in METHODS:
        raise argparse.ArgumentTypeError(
            f"unknown method {value!r}; choose one of: {', '.join(METHODS)} "
            "(case-insensitive)")
    return key


# ------------------------------------------------------------ entry point
def run_explain(args):
    """Run ``treeinf explain`` for parsed arguments.

    Returns
    -------
    int
        0 on success. A refused input raises a TreeInfError, which
        ``treeinf.cli.main`` prints without a traceback and turns into exit
        code 2 (argparse also exits with 2 on bad options).
    """
    return _explain(args)


class _Log:
    """Progress messages on stderr (silent with --quiet)."""

    def __init__(self, quiet):
        self.quiet = quiet

    def __call__(self, msg):
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    @staticmethod
    def warn(msg):
        print(f"treeinf explain: warning: {msg}", file=sys.stderr, flush=True)


def _explain(args):
    import numpy as np
    log = _Log(args.quiet)
    if args.top < 1:
        raise err.DataValidationError(f"--top must be a positive integer, got {args.top}.")
    if args.output is not None:
        _check_output_path(args.output)
    params = _parse_method_params(args.method_param)
    for path, what in ((args.model, "--model"), (args.train, "--train"),
                       (args.query, "--query")):
        if path is not None and not os.path.isfile(path):
            raise err.DataValidationError(f"{what} file {path!r} does not exist.")

    model, fmt = load_model(args.model)
    schema = _Schema(model)
    log(f"loaded {fmt} model {args.model!r}: {schema.describe()}")

    train, feats = _read_table(args.train, schema, [args.target, args.weight], "--train", log)
    X, y, w = _split(train, feats, args.target, args.weight, args.train, schema.names is None)
    y = _align_labels(y, schema)
    typed = [feats[j] for j in sorted(set(schema.categories) | schema.raw_strings)]
    log(f"read {len(train)} training rows x {len(feats)} features from {args.train!r}"
        + (f" (categorical: {', '.join(typed)})" if typed else ""))
    from ._validation import check_k
    k = check_k(args.top, len(train))

    if args.query_rows is not None:
        rows = parse_row_ids(args.query_rows, len(train))
        Xq, yq = _take(X, rows), y[rows]
        query_ids = rows
        log(f"explaining {len(rows)} training rows given by --query-rows")
    else:
        query, qfeats = _read_table(args.query, schema, [args.target, args.weight],
                                    "--query", log)
        Xq, yq, _ = _split(query, qfeats, args.target, None, args.query,
                           schema.names is None)
        yq = _align_labels(yq, schema)
        query_ids = np.arange(len(query))
        log(f"explaining {len(query)} rows of {args.query!r}")

    explainer = _make_explainer(args.method, params, args.n_jobs, not args.quiet)
    name = type(explainer).__name__
    log(f"fitting {name} (parse the model and verify it on the training data) ...")
    t0 = time.perf_counter()
    explainer.fit(model, X, y, sample_weight=w)
    log(f"fitted {name} in {time.perf_counter() - t0:.2f} s")

    kinds = ("helpful", "harmful") if args.kind == "both" else (args.kind,)
    tops = _top_influence(explainer, Xq, yq, k, kinds, quiet=args.quiet)
    result = _records(tops, query_ids, train)
    _print_table(result, train, feats, args, len(query_ids))
    if args.output is not None:
        _write_output(result, args.output)
        log(f"wrote {len(result)} records to {args.output!r}")
    return 0


def _check_output_path(path):
    low = path.lower()
    if not low.endswith(_OUTPUT_EXT):
        raise err.DataValidationError(
            f"--output {path!r} has an unsupported extension; use .csv or .json.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise err.DataValidationError(
            f"The folder of --output {path!r} does not exist; create {parent!r} first.")


def _parse_method_params(items):
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise err.DataValidationError(
                f"--method-param {item!r} is not of the form KEY=VALUE "
                "(e.g. --method-param update_set=0).")
        try:
            params[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key] = value.strip()
    return params


def _make_explainer(method, params, n_jobs, verbose):
    """The estimator named ``method`` with ``params``, n_jobs and verbose set."""
    import treeinf
    cls = getattr(treeinf, METHODS[method])
    est = cls()
    valid = est.get_params()
    unknown = [key for key in params if key not in valid]
    if unknown:
        raise err.DataValidationError(
            f"{cls.__name__} has no parameter {unknown[0]!r}; its parameters are "
            f"{sorted(valid)}.")
    settings = dict(params)
    if "n_jobs" in valid and "n_jobs" not in settings:
        settings["n_jobs"] = n_jobs
    if "verbose" in valid and "verbose" not in settings:
        settings["verbose"] = bool(verbose)
    return est.set_params(**settings)


# ------------------------------------------------------------ model files
def _detect_format(path):
    """'lightgbm', 'xgboost', 'catboost', 'catboost-json' or 'joblib' from the file."""
    if path.lower().endswith(_JOBLIB_EXT):
        return "joblib"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    text = head.lstrip()
    if head.startswith(b"CBM1"):
        return "catboost"
    if re.match(rb"tree\r?\n", text):
        return "lightgbm"
    if text.startswith(b"{"):
        if b'"learner"' in head:
            return "xgboost"
        if b'"features_info"' in head or b'"oblivious_trees"' in head:
            return "catboost-json"
        # UBJSON: '{' then a length marker and the key 'learner'
        if text[1:2] in (b"i", b"U", b"I", b"l", b"L") and b"learner" in head[:64]:
            return "xgboost"
    hint = ""
    if head[:1] == b"\x80" or head[:2] in (b"\x1f\x8b", b"BZ") or head[:3] == b"x\x9c" \
            or head[:6] == b"\xfd7zXZ\x00":
        hint = (" It looks like a pickle/joblib (possibly compressed) file: treeinf "
                "loads those only with a .joblib, .pkl or .pickle extension, because "
                "loading one executes code stored in it; rename it if you trust it.")
    raise err.UnsupportedModelError(
        f"Cannot tell the format of the model file {path!r}.{hint} Supported: "
        f"{_FORMATS}.")


def load_model(path):
    """Load a model file written by a tree library or joblib.

    Parameters
    ----------
    path : str
        LightGBM text model, XGBoost JSON/UBJSON model, CatBoost ``.cbm`` or
        JSON model (format detected from the content), or a joblib/pickle
        file with a ``.joblib``, ``.pkl`` or ``.pickle`` extension. Loading
        a joblib/pickle file executes code stored in it: use only trusted
        files.

    Returns
    -------
    model : object
        ``lightgbm.Booster``, ``xgboost.Booster``, ``catboost.CatBoost`` or
        the unpickled object.
    description : str
        The detected format, for messages.

    Raises
    ------
    UnsupportedModelError
        If the format is not recognised or the library cannot read the file.
    """
    fmt = _detect_format(path)
    labels = {"lightgbm": "LightGBM text", "xgboost": "XGBoost",
              "catboost": "CatBoost binary", "catboost-json": "CatBoost JSON",
              "joblib": "joblib"}
    try:
        if fmt == "lightgbm":
            import lightgbm
            model = lightgbm.Booster(model_file=path)
        elif fmt == "xgboost":
            import xgboost
            model = xgboost.Booster()
            with open(path, "rb") as fh:
                model.load_model(bytearray(fh.read()))
        elif fmt in ("catboost", "catboost-json"):
            import catboost
            model = catboost.CatBoost()
            model.load_model(path, format="cbm" if fmt == "catboost" else "json")
        else:
            import joblib
            model = joblib.load(path)
    except ImportError as exc:
        raise err.UnsupportedModelError(
            f"The model file {path!r} is a {labels[fmt]} model, but the library to "
            f"read it is not installed ({exc}); pip install it.") from None
    except Exception as exc:  # the library's own parse error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ImportError) and "parquet" in str(exc):
            first += ' Install a Parquet engine: pip install "treeinf[parquet]".'
        raise err.UnsupportedModelError(
            f"Could not read {path!r} as a {labels[fmt]} model: {first}. Supported: "
            f"{_FORMATS}.") from None
    return model, labels[fmt]


# -------------------------------------------------------------- the schema
class _Schema:
    """What the model expects of the input table.

    Attributes
    ----------
    names : list of str or None
        Input feature names in model order, or None (positional).
    n_features : int
    categories : dict {position: list}
        Columns to turn into pandas categoricals with exactly these categories.
    raw_strings : set of int
        Positions of CatBoost categorical columns (read as raw strings).
    unseen_ok : bool
        Whether values outside ``categories`` become missing (LightGBM,
        scikit-learn) or are an error (XGBoost refuses them).
    objective, classes, library, model_name
        From the parsed ensemble.
    """

    def __init__(self, model):
        from ._trees import parse_model
        ens = parse_model(model)          # verified later, by the explainer's fit
        enc = ens.encoder
        self.objective = ens.objective
        self.classes = ens.classes
        self.library = ens.library
        self.model_name = ens.model_name
        self.n_trees = ens.n_trees
        self.categories, self.raw_strings = {}, set()
        self.unseen_ok = ens.library != "xgboost"
        if enc.preprocessor is not None:   # a Pipeline: its own steps type the columns
            names = getattr(model, "feature_names_in_", None)
            self.names = None if names is None else [str(c) for c in names]
            self.n_features = int(getattr(model, "n_features_in_", len(self.names or [])))
            self.pipeline = True
            return
        self.pipeline = False
        self.n_features = enc.n_features
        self.names = enc.feature_names
        if ens.library == "catboost":
            self.raw_strings = set(enc.categorical_columns)
            if self.names is not None and self.names == [str(j) for j in range(self.n_features)]:
                self.names = None          # CatBoost's default ids, not real names
            return
        self.categories = {int(j): list(c) for j, c in enc.categories.items()}
        pandas_cat = getattr(enc, "pandas_categorical", None)
        if pandas_cat and not self.categories:
            raise err.UnsupportedModelError(
                f"The {ens.model_name} stores {len(pandas_cat)} pandas category lists "
                f"but splits categorically on {len(enc.categorical_columns)} columns, so "
                "the categorical columns of the file cannot be identified. Explain it "
                "from Python with the training DataFrame instead.")

    def describe(self):
        kind = self.objective
        if self.classes is not None:
            labels = [c.item() if hasattr(c, "item") else c for c in self.classes]
            kind = f"{kind}, classes {labels[:10]}"
        what = "Pipeline ending in " if self.pipeline else ""
        return f"{what}{self.model_name}, {kind}, {self.n_trees} trees"


# ------------------------------------------------------------ reading data
def _table_kind(path):
    low = path.lower()
    if low.endswith((".parquet", ".pq")):
        return "parquet"
    if re.search(r"\.csv(\.(gz|bz2|zip|xz|zst))?$", low):
        return "csv"
    raise err.DataValidationError(
        f"Data file {path!r} has an unsupported extension; use .csv (optionally "
        ".csv.gz/.bz2/.zip/.xz/.zst) or .parquet.")


def _feature_columns(columns, schema, exclude, path):
    """File column names of the model's features, in model order."""
    columns = [str(c) for c in columns]
    if schema.names is None:
        feats = [c for c in columns if c not in exclude]
        if len(feats) != schema.n_features:
            raise err.DataValidationError(
                f"{schema.model_name} records no feature names, so the columns of "
                f"{path!r} other than the target/weight are taken in order as its "
                f"{schema.n_features} features; but there are {len(feats)}: "
                f"{feats[:12]}{' ...' if len(feats) > 12 else ''}. Remove the extra "
                "columns or add the missing ones.")
        return feats
    norm = {re.sub(r"\s", "_", c): c for c in columns}
    out, missing = [], []
    for name in schema.names:
        if name in columns:
            out.append(name)
        elif schema.library == "lightgbm" and re.sub(r"\s", "_", name) in norm:
            out.append(norm[re.sub(r"\s", "_", name)])  # LightGBM replaced whitespace
        else:
            missing.append(name)
    if missing:
        raise err.DataValidationError(
            f"{path!r} lacks {len(missing)} feature column(s) the model was trained "
            f"with: {missing[:10]}{' ...' if len(missing) > 10 else ''}. Its columns "
            f"are {columns[:12]}{' ...' if len(columns) > 12 else ''}.")
    return out


def _read_table(path, schema, exclude, what, log):
    """The whole file as a DataFrame, feature columns typed for the model.

    Returns
    -------
    df : DataFrame of shape (n_rows, n_columns)
        Every column of the file, in file order.
    features : list of str
        The columns of the model's features, in model order.
    """
    import pandas as pd
    from pandas.api.types import is_numeric_dtype
    kind = _table_kind(path)
    exclude = [c for c in exclude if c is not None]
    text_cols = set()
    try:
        if kind == "csv":
            header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
            feats = _feature_columns(header, schema, exclude, path)
            if schema.pipeline:  # its own steps encode text columns: find them
                probe = pd.read_csv(path, usecols=feats, **_exact_floats())
                text_cols = {c for c in feats if not is_numeric_dtype(probe[c].dtype)}
            # text is read verbatim ('NA' may be a category); numbers with the
            # usual missing-value markers
            string_cols = text_cols | {feats[j] for j in
                                       set(schema.categories) | schema.raw_strings}
            df = pd.read_csv(
                path, dtype={c: str for c in string_cols}, keep_default_na=False,
                na_values={c: _NA_TOKENS for c in header if c not in string_cols},
                **_exact_floats())
        else:
            df = pd.read_parquet(path)
            df.columns = [str(c) for c in df.columns]
            feats = _feature_columns(df.columns, schema, exclude, path)
    except err.TreeInfError:
        raise
    except (OSError, ValueError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ImportError) and "parquet" in str(exc):
            first += ' Install a Parquet engine: pip install "treeinf[parquet]".'
        raise err.DataValidationError(f"Could not read {what} file {path!r}: {first}") from None
    if len(df) == 0:
        raise err.DataValidationError(f"{what} file {path!r} has no data rows.")
    for j, col in enumerate(feats):
        if j in schema.categories:
            df[col] = _to_categorical(df[col], schema.categories[j], col, path, schema, log)
        elif j in schema.raw_strings:     # CatBoost: the values as they are
            if isinstance(df[col].dtype, pd.CategoricalDtype):
                df[col] = df[col].astype(object)
        elif col in text_cols:            # an empty cell is a missing value
            df[col] = df[col].mask(df[col] == "")
        elif not schema.pipeline:
            df[col] = _to_numeric(df[col], col, path)
    return df, feats


def _exact_floats():
    """read_csv arguments that parse every double exactly (the model's
    thresholds are compared with the training values bit for bit)."""
    import pandas as pd
    if int(pd.__version__.split(".")[0]) >= 3:
        return {}   # exact by default; the argument is deprecated
    return {"float_precision": "round_trip"}


def _to_numeric(series, col, path):
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype
    if is_numeric_dtype(series.dtype) and not is_bool_dtype(series.dtype):
        return series
    try:
        return pd.to_numeric(series, errors="raise").astype("float64")
    except (TypeError, ValueError):
        bad = next((v for v in series if _is_text(v)), series.iloc[0])
        raise err.DataValidationError(
            f"Column {col!r} of {path!r} holds non-numeric values (e.g. {bad!r}), but "
            "the model treats it as numeric.") from None


def _is_text(v):
    if not isinstance(v, str):
        return False
    try:
        float(v)
        return False
    except ValueError:
        return True


def _to_categorical(series, categories, col, path, schema, log):
    """``series`` as a pandas Categorical with exactly ``categories``.

    Values are matched to the categories as they are, then by their text
    (a CSV holds '1' for the category 1 and '1.5' for 1.5). Text that is no
    category but one of pandas' missing-value markers ('', 'nan', 'NA', ...)
    is missing; any other value is unseen.
    """
    import numpy as np
    import pandas as pd
    values = series.astype(object)
    by_text = {str(c): c for c in categories}
    known = set()
    for c in categories:
        try:
            known.add(c)
        except TypeError:
            pass
    mapping, unseen = {}, []
    for v in pd.unique(values[values.notna()]):
        if v in known:
            mapping[v] = v
            continue
        text = str(v)
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            text = str(int(v)) if text not in by_text else text
        if text in by_text:
            mapping[v] = by_text[text]
        elif text not in _NA_TOKENS:  # a missing-value marker stays missing
            unseen.append(v)
    if unseen:
        msg = (f"Column {col!r} of {path!r} holds {len(unseen)} value(s) that are not "
               f"among the model's categories, e.g. {unseen[:5]}; known: "
               f"{list(categories)[:10]}{' ...' if len(categories) > 10 else ''}")
        if not schema.unseen_ok:
            raise err.DataValidationError(msg + "; XGBoost refuses such values.")
        log.warn(msg + "; they are treated as missing, as the model does.")
    mapped = values.map(mapping)
    return pd.Series(pd.Categorical(mapped, categories=categories), index=series.index,
                     name=series.name)


def _split(df, feats, target, weight, path, positional):
    """(X, y ndarray, w ndarray or None).

    X holds the model's columns in model order: a DataFrame, or for a model
    without feature names (``positional``) a NumPy array unless a column is
    categorical, so that the library sees no names it was not trained with.
    """
    import numpy as np
    import pandas as pd
    from pandas.api.types import is_numeric_dtype
    columns = list(df.columns)
    for col, flag in ((target, "--target"), (weight, "--weight")):
        if col is not None and col not in columns:
            hint = (" It holds the label the query row's loss is measured against "
                    "(for example the true label, or the model's predicted label).") \
                if flag == "--target" else ""
            raise err.DataValidationError(
                f"{path!r} has no column {col!r} ({flag}).{hint} Its columns are "
                f"{columns[:12]}{' ...' if len(columns) > 12 else ''}.")
    X = df[feats]
    if positional and not any(isinstance(dt, pd.CategoricalDtype) for dt in X.dtypes):
        numeric = all(is_numeric_dtype(dt) for dt in X.dtypes)
        X = X.to_numpy(dtype=np.float64 if numeric else object)
    y = df[target].to_numpy()
    w = None
    if weight is not None:
        try:
            w = df[weight].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise err.DataValidationError(
                f"Weight column {weight!r} of {path!r} is not numeric.") from None
    return X, y, w


def _take(X, rows):
    """Rows of a DataFrame or an array."""
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _align_labels(y, schema):
    """Class labels of the file matched to the model's classes (by value, then text)."""
    import numpy as np
    import pandas as pd
    if schema.objective == "regression" or schema.classes is None:
        return y
    classes = list(schema.classes)
    if np.all(pd.Index(classes).get_indexer(y) >= 0):
        return y
    by_text = {str(c): c for c in classes}
    out = np.empty(len(y), dtype=object)
    for i, v in enumerate(y):
        text = str(v)
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            text = str(int(v))
        out[i] = by_text.get(text, v)
    return out


# ------------------------------------------------------------ the influence
def parse_row_ids(text, n_rows):
    """Row ids from a list such as ``'3,10-12'`` (ranges inclusive).

    Parameters
    ----------
    text : str
    n_rows : int
        Number of data rows; ids must lie in ``[0, n_rows)``.

    Returns
    -------
    ndarray of shape (n_ids,), int64
        In the given order.
    """
    import numpy as np
    ids = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if m is None:
            raise err.DataValidationError(
                f"--query-rows: {part!r} is not a row id or an inclusive range such as "
                "10-12; write e.g. --query-rows 3,10-12.")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise err.DataValidationError(
                f"--query-rows: the range {part!r} ends before it starts.")
        if hi >= n_rows:
            raise err.DataValidationError(
                f"--query-rows: row {hi} does not exist; the training file has "
                f"{n_rows} data rows (ids 0..{n_rows - 1}).")
        ids.extend(range(lo, hi + 1))
    return np.asarray(ids, dtype=np.int64)


def _top_influence(explainer, Xq, yq, k, kinds, quiet):
    """{kind: (indices, values)}, each of shape (n_query, k).

    Query rows are independent, so they are processed in chunks whose size
    adapts to about half a second each, under a progress bar. Retraining
    methods refit models for every call, so they get one call (the dense
    matrix they compute anyway, ranked as ``get_top_influence`` ranks) and
    show their own progress bar.
    """
    import numpy as np
    n = len(yq)
    if type(explainer).__name__ in _RETRAINING:
        from .explainers._base import top_from_local
        local = explainer.get_local_influence(Xq, yq)
        return {kind: top_from_local(local, k, kind == "helpful") for kind in kinds}
    from tqdm.auto import tqdm
    parts = {kind: [] for kind in kinds}
    size, start = 8, 0
    with tqdm(total=n, desc=f"{type(explainer).__name__} top-{k}", unit="row",
              disable=quiet, file=sys.stderr) as bar:
        while start < n:
            stop = min(n, start + size)
            t0 = time.perf_counter()
            for kind in kinds:
                parts[kind].append(explainer.get_top_influence(
                    _take(Xq, slice(start, stop)), yq[start:stop], k=k, kind=kind))
            elapsed = time.perf_counter() - t0
            bar.update(stop - start)
            size = int(min(4096, max(1, (stop - start) * 0.5 / max(elapsed, 1e-3))))
            start = stop
    return {kind: (np.concatenate([p[0] for p in parts[kind]]),
                   np.concatenate([p[1] for p in parts[kind]])) for kind in kinds}


def _records(tops, query_ids, train):
    """DataFrame: one row per (query row, kind, rank) with the training row's values."""
    import numpy as np
    import pandas as pd
    blocks = []
    for kind, (idx, val) in tops.items():
        nq, k = idx.shape
        blocks.append(pd.DataFrame({
            "query_row": np.repeat(query_ids, k),
            "kind": kind,
            "rank": np.tile(np.arange(1, k + 1), nq),
            "train_row": idx.reshape(-1),
            "influence": val.reshape(-1),
            "_q": np.repeat(np.arange(nq), k),
            "_kind": 0 if kind == "helpful" else 1,
        }))
    res = pd.concat(blocks, ignore_index=True)
    res = res.sort_values(["_q", "_kind", "rank"], kind="stable").drop(columns=["_q", "_kind"])
    values = train.iloc[res["train_row"].to_numpy()].reset_index(drop=True)
    values.columns = [f"train_{c}" if c in _FIXED_COLUMNS else c for c in values.columns]
    return pd.concat([res.reset_index(drop=True), values], axis=1)


def _print_table(result, train, feats, args, n_query):
    """Readable blocks per query row: rank, training row, influence, a few values."""
    shown = [args.target] + list(feats[:_TERMINAL_COLUMNS])
    shown = [f"train_{c}" if c in _FIXED_COLUMNS else c for c in shown]
    hidden = train.shape[1] - len(shown)
    limit = n_query if args.output is None else min(n_query, _TERMINAL_ROWS)
    lines = [f"treeinf explain: {METHODS[args.method]} influence on each query row's "
             "loss (positive = helpful: removing the training row would increase it)."]
    if hidden > 0:
        where = "all are in the output file" if args.output else "use --output for all"
        lines.append(f"(showing {len(shown)} of the {train.shape[1]} columns of each "
                     f"training row; {where})")
    k = int(result["rank"].max())
    n_kinds = result["kind"].nunique()
    block = k * n_kinds          # records per query row, in query order
    for pos in range(limit):
        part = result.iloc[pos * block:(pos + 1) * block]
        for kind in dict.fromkeys(part["kind"]):
            rows = part[part["kind"] == kind]
            lines.append("")
            lines.append(f"query row {rows['query_row'].iloc[0]}: most {kind} training rows")
            lines.append(rows[["rank", "train_row", "influence"] + shown].to_string(
                index=False, formatters={"influence": "{:+.4e}".format}, max_colwidth=24))
    if n_query > limit:
        lines.append("")
        lines.append(f"... {n_query - limit} more query rows in {args.output!r}")
    print("\n".join(lines), flush=True)


def _json_value(v):
    import numpy as np
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return None
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return v
    try:
        if v != v:  # pd.NA, NaT
            return None
    except (TypeError, ValueError):
        return None
    return str(v)


def _write_output(result, path):
    try:
        if path.lower().endswith(".csv"):
            result.to_csv(path, index=False)
        else:
            cols = list(result.columns)
            records = [{c: _json_value(v) for c, v in zip(cols, row)}
                       for row in result.itertuples(index=False, name=None)]
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(records, fh, indent=1, allow_nan=False)
                fh.write("\n")
    except OSError as exc:
        raise err.DataValidationError(f"Could not write --output {path!r}: {exc}") from None
