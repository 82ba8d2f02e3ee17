"""``treeinf explain``: model files written by each library, CSV files with NaNs
and a categorical column, the command run as a subprocess for the LightGBM,
XGBoost and CatBoost files (in-process through ``treeinf.cli.main`` for the
other cases, to keep the module fast), and its output compared with the
Python API on the same model loaded from the file by the library itself."""
import json
import os
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from conftest import make_data
from treeinf import LOO, BoostIn, LeafInfluence
from treeinf._explain_cli import parse_row_ids
from treeinf.cli import main
from treeinf.exceptions import DataValidationError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_TRAIN, N_QUERY, K = 150, 12, 4
FIXED = ["query_row", "kind", "rank", "train_row", "influence"]
TRAIN_COLUMNS = ["id", "f0", "f1", "f2", "c0", "w", "y", "y3", "label"]


def start_cli(*args):
    """``python -m treeinf explain ARGS`` started in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "treeinf", "explain", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)


def finish(proc):
    """(exit code, stdout, stderr) of a started command."""
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _as_text(c0):
    """CatBoost (and text-pipeline) form of the categorical column: 'nan' for missing."""
    return c0.astype(object).where(c0.notna(), "nan")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Training/query CSVs and one model file per format, plus the API's inputs."""
    import catboost as cb
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    d = tmp_path_factory.mktemp("explain")
    n = N_TRAIN + N_QUERY
    X, y = make_data("binary", n=n, n_num=3, n_cat=1, nan_frac=0.1, seed=3)
    _, y3 = make_data("multiclass", n=n, n_num=3, n_cat=1, nan_frac=0.1, seed=3)
    w = np.random.default_rng(4).uniform(0.5, 2.0, size=n)
    label = np.array(["no", "yes"], dtype=object)[y]
    Xs = X.assign(c0=_as_text(X["c0"]))            # c0 as strings, 'nan' for missing
    tr, q = slice(0, N_TRAIN), slice(N_TRAIN, n)

    table = Xs.copy()
    table.insert(0, "id", 1000 + np.arange(n))
    table["w"], table["y"], table["y3"], table["label"] = w, y, y3, label
    table.iloc[tr].to_csv(d / "train.csv", index=False)
    table.iloc[q].drop(columns=["w"]).to_csv(d / "query.csv", index=False)
    table.iloc[q].drop(columns=["f1"]).to_csv(d / "query_no_f1.csv", index=False)
    assert list(table.columns) == TRAIN_COLUMNS

    paths = {}
    m = lgb.LGBMClassifier(n_estimators=6, num_leaves=7, min_child_samples=5,
                           n_jobs=1, verbose=-1, random_state=0)
    m.fit(X.iloc[tr], y[tr], sample_weight=w[tr])
    paths["lightgbm"] = d / "lgb_model.txt"
    m.booster_.save_model(paths["lightgbm"])
    m = xgb.XGBClassifier(n_estimators=6, max_depth=3, enable_categorical=True,
                          tree_method="hist", n_jobs=1, random_state=0)
    m.fit(X.iloc[tr], y3[tr], sample_weight=w[tr])
    paths["xgboost_json"], paths["xgboost_ubj"] = d / "xgb.json", d / "xgb.ubj"
    m.save_model(paths["xgboost_json"])
    m.save_model(paths["xgboost_ubj"])
    m = cb.CatBoostClassifier(iterations=6, depth=3, one_hot_max_size=10, thread_count=1,
                              random_seed=0, verbose=False, allow_writing_files=False)
    m.fit(Xs.iloc[tr], y[tr], cat_features=["c0"], sample_weight=w[tr])
    paths["catboost"], paths["catboost_json"] = d / "cb_model.cbm", d / "cb_model.json"
    m.save_model(str(paths["catboost"]))
    m.save_model(str(paths["catboost_json"]), format="json")
    pipe = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                 ["c0"]), remainder="passthrough"),
        HistGradientBoostingClassifier(max_iter=6, max_leaf_nodes=7, early_stopping=False,
                                       random_state=0))
    pipe.fit(Xs.iloc[tr], label[tr])
    paths["pipeline"] = d / "pipe.joblib"
    joblib.dump(pipe, paths["pipeline"])

    # no feature names, no NaN (GradientBoosting), for LOO and positional columns
    Xn = np.nan_to_num(X[["f0", "f1", "f2"]].to_numpy()[:40])
    small = pd.DataFrame(Xn, columns=["a", "b", "c"]).assign(target=y[:40])
    small.to_csv(d / "small.csv", index=False)
    gb = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0)
    gb.fit(Xn, y[:40])
    paths["gb"] = d / "gb.pkl"
    joblib.dump(gb, paths["gb"])
    booster = lgb.LGBMClassifier(n_estimators=4, num_leaves=5, min_child_samples=3,
                                 verbose=-1, n_jobs=1).fit(Xn, y[:40]).booster_
    paths["lgb_nonames"] = d / "lgb_nonames.txt"
    booster.save_model(paths["lgb_nonames"])

    return dict(dir=d, paths=paths, X=X, Xs=Xs, y=y, y3=y3, label=label, w=w, tr=tr, q=q,
                table=table, small=small, Xn=Xn)


NATIVE = [("lightgbm", "y", ".csv"), ("xgboost_json", "y3", ".json"),
          ("catboost", "y", ".json"), ("xgboost_ubj", "y3", ".csv"),
          ("catboost_json", "y", ".csv")]
SUBPROCESS = ("lightgbm", "xgboost_json", "catboost")   # the others run in-process


def _native_args(f, fmt, target, ext):
    quiet = ["--quiet"] if fmt != "lightgbm" else []    # one run shows its progress
    return ["--model", f["paths"][fmt], "--train", f["dir"] / "train.csv",
            "--target", target, "--weight", "w", "--query", f["dir"] / "query.csv",
            "--top", K, "--output", f["dir"] / f"out_{fmt}{ext}", *quiet]


@pytest.fixture(scope="module")
def launched(files):
    """Every subprocess run of the module, started at once (each spends most of
    its time importing), so their start-up overlaps."""
    f = files
    cases = {fmt: _native_args(f, fmt, target, ext)
             for fmt, target, ext in NATIVE if fmt in SUBPROCESS}
    cases["missing_column"] = ["--model", f["paths"]["catboost"], "--train",
                               f["dir"] / "train.csv", "--target", "y", "--query",
                               f["dir"] / "query_no_f1.csv", "--quiet"]
    procs = {name: start_cli(*args) for name, args in cases.items()}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _read_output(path):
    if str(path).endswith(".json"):
        with open(path, encoding="utf-8") as fh:
            records = json.load(fh)
        return pd.DataFrame.from_records(records, columns=list(records[0]))
    return pd.read_csv(path)


def _missing(v):
    return v is None or v == "nan" or (isinstance(v, float) and np.isnan(v))


def check_against_api(out, explainer, Xq, yq, k, kinds, query_ids, table):
    """The output records equal get_top_influence of the API, row values included."""
    assert list(out.columns[:5]) == FIXED
    assert list(out.columns[5:]) == list(table.columns)
    per_query = k * len(kinds)
    assert len(out) == len(query_ids) * per_query
    for e, qid in enumerate(query_ids):
        block = out.iloc[e * per_query:(e + 1) * per_query]
        assert (block["query_row"] == qid).all()
        for j, kind in enumerate(kinds):
            row = Xq.iloc[[e]] if hasattr(Xq, "iloc") else Xq[[e]]
            idx, val = explainer.get_top_influence(row, yq[[e]], k=k, kind=kind)
            part = block.iloc[j * k:(j + 1) * k]
            assert (part["kind"] == kind).all()
            np.testing.assert_array_equal(part["rank"], np.arange(1, k + 1))
            np.testing.assert_array_equal(part["train_row"], idx[0])
            np.testing.assert_allclose(part["influence"], val[0], rtol=1e-12, atol=0)
    # the training row's values, as in the training file
    rows = table.iloc[out["train_row"].to_numpy()]
    for col in table.columns:
        got, want = out[col].tolist(), rows[col].tolist()
        for g, v in zip(got, want):
            if _missing(v):
                assert _missing(g), (col, g, v)
            elif isinstance(v, str):
                assert str(g) == v, (col, g, v)
            else:
                assert float(g) == float(v), (col, g, v)


# ------------------------------------------------------------------ native files
def _reference_model(fmt, path):
    """The model loaded from its file by the library itself."""
    if fmt == "lightgbm":
        import lightgbm as lgb
        return lgb.Booster(model_file=str(path))
    if fmt.startswith("xgboost"):
        import xgboost as xgb
        model = xgb.Booster()
        model.load_model(str(path))
        return model
    import catboost as cb
    model = cb.CatBoost()
    model.load_model(str(path), format="json" if fmt == "catboost_json" else "cbm")
    return model


@pytest.mark.parametrize("fmt, target, ext", NATIVE)
def test_native_model_files_match_api(files, launched, capfd, fmt, target, ext):
    f = files
    path = f["paths"][fmt]
    out_path = f["dir"] / f"out_{fmt}{ext}"
    quiet = fmt != "lightgbm"
    if fmt in SUBPROCESS:
        rc, out, err = finish(launched[fmt])
    else:
        rc = main(["explain", *map(str, _native_args(f, fmt, target, ext))])
        out, err = capfd.readouterr()
    assert rc == 0, err
    assert "Traceback" not in err
    assert "query row 0: most helpful training rows" in out
    assert "query row 0: most harmful training rows" in out
    if quiet:
        assert err == ""
    else:  # progress messages and the progress bar
        assert "fitted BoostIn" in err and f"BoostIn top-{K}" in err
        assert f"{N_QUERY}/{N_QUERY}" in err

    # the reference: the API on the model as the library loads it, with the
    # training DataFrame as the model was trained on it
    model = _reference_model(fmt, path)
    X = f["Xs"] if fmt.startswith("catboost") else f["X"]
    y = f[target]
    explainer = BoostIn().fit(model, X.iloc[f["tr"]], y[f["tr"]], sample_weight=f["w"][f["tr"]])
    check_against_api(_read_output(out_path), explainer, X.iloc[f["q"]], y[f["q"]], K,
                      ["helpful", "harmful"], np.arange(N_QUERY),
                      f["table"].iloc[f["tr"]].reset_index(drop=True))


def test_parquet_files(files):
    """Parquet keeps its own types; CatBoost's categorical column stays text."""
    f = files
    table = f["table"]
    table.iloc[f["tr"]].to_parquet(f["dir"] / "train.parquet", index=False)
    table.iloc[f["q"]].to_parquet(f["dir"] / "query.parquet", index=False)
    out_path = f["dir"] / "out_parquet.csv"
    rc = main(["explain", "--model", str(f["paths"]["catboost"]), "--train",
               str(f["dir"] / "train.parquet"), "--target", "y", "--weight", "w",
               "--query", str(f["dir"] / "query.parquet"), "--top", "3",
               "--output", str(out_path), "--quiet"])
    assert rc == 0
    model = _reference_model("catboost", f["paths"]["catboost"])
    explainer = BoostIn().fit(model, f["Xs"].iloc[f["tr"]], f["y"][f["tr"]],
                              sample_weight=f["w"][f["tr"]])
    check_against_api(_read_output(out_path), explainer, f["Xs"].iloc[f["q"]],
                      f["y"][f["q"]], 3, ["helpful", "harmful"], np.arange(N_QUERY),
                      table.iloc[f["tr"]].reset_index(drop=True))


def test_joblib_pipeline_with_string_labels(files):
    f = files
    out_path = f["dir"] / "out_pipe.json"
    rc = main(["explain", "--model", str(f["paths"]["pipeline"]), "--train",
               str(f["dir"] / "train.csv"), "--target", "label", "--query",
               str(f["dir"] / "query.csv"), "--top", "3", "--kind", "harmful",
               "--output", str(out_path), "--quiet"])
    assert rc == 0
    pipe = joblib.load(f["paths"]["pipeline"])
    explainer = BoostIn().fit(pipe, f["Xs"].iloc[f["tr"]], f["label"][f["tr"]])
    check_against_api(_read_output(out_path), explainer, f["Xs"].iloc[f["q"]],
                      f["label"][f["q"]], 3, ["harmful"], np.arange(N_QUERY),
                      f["table"].iloc[f["tr"]].reset_index(drop=True))


# --------------------------------------------------------------- in-process runs
def test_query_rows_of_the_training_file(files, capsys):
    import lightgbm as lgb
    f = files
    out_path = f["dir"] / "out_rows.csv"
    rc = main(["explain", "--model", str(f["paths"]["lightgbm"]), "--train",
               str(f["dir"] / "train.csv"), "--target", "y", "--weight", "w",
               "--query-rows", "2,5-7", "--kind", "harmful", "--top", "3",
               "--output", str(out_path), "--quiet"])
    assert rc == 0
    model = lgb.Booster(model_file=str(f["paths"]["lightgbm"]))
    Xtr, ytr = f["X"].iloc[f["tr"]], f["y"][f["tr"]]
    explainer = BoostIn().fit(model, Xtr, ytr, sample_weight=f["w"][f["tr"]])
    rows = [2, 5, 6, 7]
    check_against_api(_read_output(out_path), explainer, Xtr.iloc[rows], ytr[rows], 3,
                      ["harmful"], rows, f["table"].iloc[f["tr"]].reset_index(drop=True))
    assert "query row 5: most harmful training rows" in capsys.readouterr().out


def test_method_and_method_param(files):
    import lightgbm as lgb
    f = files
    out_path = f["dir"] / "out_leaf.csv"
    rc = main(["explain", "--model", str(f["paths"]["lightgbm"]), "--train",
               str(f["dir"] / "train.csv"), "--target", "y", "--weight", "w",
               "--query", str(f["dir"] / "query.csv"), "--method", "LeafInfluence",
               "--method-param", "update_set=0", "--top", "2", "--output", str(out_path),
               "--quiet"])
    assert rc == 0
    model = lgb.Booster(model_file=str(f["paths"]["lightgbm"]))
    explainer = LeafInfluence(update_set=0).fit(
        model, f["X"].iloc[f["tr"]], f["y"][f["tr"]], sample_weight=f["w"][f["tr"]])
    check_against_api(_read_output(out_path), explainer, f["X"].iloc[f["q"]], f["y"][f["q"]],
                      2, ["helpful", "harmful"], np.arange(N_QUERY),
                      f["table"].iloc[f["tr"]].reset_index(drop=True))


def test_retraining_method_and_positional_columns(files):
    f = files
    out_path = f["dir"] / "out_loo.csv"
    rc = main(["explain", "--model", str(f["paths"]["gb"]), "--train",
               str(f["dir"] / "small.csv"), "--target", "target", "--query-rows", "0-3",
               "--method", "loo", "--n-jobs", "1", "--top", "3", "--output", str(out_path),
               "--quiet"])
    assert rc == 0
    gb = joblib.load(f["paths"]["gb"])
    Xn, yn = f["Xn"], f["small"]["target"].to_numpy()
    explainer = LOO(n_jobs=1).fit(gb, Xn, yn)
    check_against_api(_read_output(out_path), explainer, Xn[:4], yn[:4], 3,
                      ["helpful", "harmful"], [0, 1, 2, 3], f["small"])


def test_model_without_feature_names_takes_columns_in_order(files, capsys):
    import lightgbm as lgb
    f = files
    out_path = f["dir"] / "out_nonames.csv"
    args = ["explain", "--model", str(f["paths"]["lgb_nonames"]), "--target", "target",
            "--query-rows", "1,4", "--top", "2", "--quiet"]
    assert main(args + ["--train", str(f["dir"] / "small.csv"), "--output", str(out_path)]) == 0
    model = lgb.Booster(model_file=str(f["paths"]["lgb_nonames"]))
    Xn, yn = f["Xn"], f["small"]["target"].to_numpy()
    explainer = BoostIn().fit(model, Xn, yn)
    check_against_api(_read_output(out_path), explainer, Xn[[1, 4]], yn[[1, 4]],
                      2, ["helpful", "harmful"], [1, 4], f["small"])
    # one column too many: the count is checked and the columns listed
    f["small"].assign(extra=1.0).to_csv(f["dir"] / "small_extra.csv", index=False)
    assert main(args + ["--train", str(f["dir"] / "small_extra.csv")]) == 2
    err = capsys.readouterr().err
    assert "records no feature names" in err and "'extra'" in err and "there are 4" in err


def test_unseen_category(files, capsys):
    """LightGBM treats an unseen category as missing (with a warning); XGBoost refuses it."""
    import lightgbm as lgb
    f = files
    query = f["table"].iloc[f["q"]].drop(columns=["w"]).assign(c0="zzz")
    query.to_csv(f["dir"] / "query_unseen.csv", index=False)
    out_path = f["dir"] / "out_unseen.csv"
    common = ["--train", str(f["dir"] / "train.csv"), "--weight", "w", "--query",
              str(f["dir"] / "query_unseen.csv"), "--top", "2", "--quiet"]
    rc = main(["explain", "--model", str(f["paths"]["lightgbm"]), "--target", "y",
               "--output", str(out_path)] + common)
    assert rc == 0
    assert "'zzz'" in capsys.readouterr().err
    model = lgb.Booster(model_file=str(f["paths"]["lightgbm"]))
    explainer = BoostIn().fit(model, f["X"].iloc[f["tr"]], f["y"][f["tr"]],
                              sample_weight=f["w"][f["tr"]])
    Xq = f["X"].iloc[f["q"]].assign(c0=pd.Categorical([np.nan] * N_QUERY,
                                                      categories=list("abcdef")))
    check_against_api(_read_output(out_path), explainer, Xq, f["y"][f["q"]], 2,
                      ["helpful", "harmful"], np.arange(N_QUERY),
                      f["table"].iloc[f["tr"]].reset_index(drop=True))
    rc = main(["explain", "--model", str(f["paths"]["xgboost_json"]), "--target", "y3"]
              + common)
    assert rc == 2
    err = capsys.readouterr().err
    assert "'zzz'" in err and "XGBoost refuses" in err


# ------------------------------------------------------------------ bad input
def test_missing_column_subprocess(launched):
    rc, out, err = finish(launched["missing_column"])
    assert rc == 2
    assert "Traceback" not in err
    assert "treeinf explain: error:" in err
    assert "lacks 1 feature column" in err and "['f1']" in err


def _run_error(capsys, args):
    rc = main(["explain"] + [str(a) for a in args])
    assert rc == 2
    return capsys.readouterr().err


def test_bad_input_messages(files, capsys):
    f = files
    train = ["--train", f["dir"] / "train.csv", "--target", "y"]
    lgb_model = ["--model", f["paths"]["lightgbm"]]

    bad = f["dir"] / "model.bin"
    bad.write_bytes(b"certainly not a model\n")
    err = _run_error(capsys, ["--model", bad, *train, "--query-rows", "0"])
    assert "Cannot tell the format of the model file" in err
    for fmt in ("LightGBM text", "XGBoost JSON", "CatBoost binary (.cbm)", ".joblib"):
        assert fmt in err
    # a file of the right look that the library cannot read
    (f["dir"] / "broken.txt").write_text("tree\nversion=v4\nnonsense\n")
    err = _run_error(capsys, ["--model", f["dir"] / "broken.txt", *train, "--query-rows", "0"])
    assert "Could not read" in err and "LightGBM text model" in err

    # unknown and unusable methods are argparse errors (exit 2, usage shown)
    for method, text in (("foo", "unknown method 'foo'"), ("Loss", "defines only")):
        with pytest.raises(SystemExit) as info:
            main(["explain", *map(str, lgb_model + train), "--query-rows", "0",
                  "--method", method])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert text in err and "boostin, leafinfluence" in err

    # a pickle without a trusted extension is not unpickled
    joblib.dump({"not": "a model"}, f["dir"] / "model.dat")
    err = _run_error(capsys, ["--model", f["dir"] / "model.dat", *train, "--query-rows", "0"])
    assert ".joblib" in err and "executes code" in err
    # a joblib file holding something else
    joblib.dump({"not": "a model"}, f["dir"] / "dict.joblib")
    err = _run_error(capsys, ["--model", f["dir"] / "dict.joblib", *train, "--query-rows", "0"])
    assert "builtins.dict" in err and "not supported" in err

    # the query file needs the target column
    f["table"].iloc[f["q"]].drop(columns=["y"]).to_csv(f["dir"] / "query_no_y.csv",
                                                      index=False)
    err = _run_error(capsys, [*lgb_model, *train, "--query", f["dir"] / "query_no_y.csv"])
    assert "has no column 'y' (--target)" in err

    for ids, text in (("5-2", "ends before it starts"), ("3,999", "row 999 does not exist"),
                      ("x", "not a row id")):
        err = _run_error(capsys, [*lgb_model, *train, "--query-rows", ids])
        assert text in err
    err = _run_error(capsys, [*lgb_model, *train, "--query-rows", "0", "--top", N_TRAIN + 1])
    assert f"k={N_TRAIN + 1} is larger than the number of training rows" in err
    err = _run_error(capsys, [*lgb_model, *train, "--query-rows", "0",
                              "--method-param", "nonsense=1"])
    assert "BoostIn has no parameter 'nonsense'" in err and "'variant'" in err
    err = _run_error(capsys, [*lgb_model, *train, "--query-rows", "0", "--output", "x.txt"])
    assert "use .csv or .json" in err
    err = _run_error(capsys, [*lgb_model, "--train", f["dir"] / "nope.csv", "--target", "y",
                              "--query-rows", "0"])
    assert "does not exist" in err
    # a target the Booster does not know as a class index
    err = _run_error(capsys, [*lgb_model, "--train", f["dir"] / "train.csv", "--target", "id",
                              "--query-rows", "0"])
    assert "labels the model never saw" in err
    # a numeric feature holding text
    f["table"].iloc[f["tr"]].assign(f2="high").to_csv(f["dir"] / "train_text.csv", index=False)
    err = _run_error(capsys, [*lgb_model, "--train", f["dir"] / "train_text.csv",
                              "--target", "y", "--query-rows", "0"])
    assert "Column 'f2'" in err and "'high'" in err


def test_parse_row_ids():
    np.testing.assert_array_equal(parse_row_ids("3, 10-12,0", 20), [3, 10, 11, 12, 0])
    np.testing.assert_array_equal(parse_row_ids("7-7", 8), [7])
    with pytest.raises(DataValidationError, match="ids 0..7"):
        parse_row_ids("8", 8)
    with pytest.raises(DataValidationError, match="not a row id"):
        parse_row_ids("-1", 8)
