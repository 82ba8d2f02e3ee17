"""Bad input gets a clear treeinf.exceptions error."""
import numpy as np
import pytest

from models import trained
from treeinf import BoostIn, parse_model
from treeinf.exceptions import (DataValidationError, NotFittedError, TreeInfError,
                                UnsupportedModelError)


@pytest.fixture(scope="module")
def fitted():
    model, Xtr, ytr, w, Xte, yte = trained("lightgbm", "binary", nan_frac=0.0)
    return model, Xtr, ytr, Xte, yte, BoostIn().fit(model, Xtr, ytr)


def test_wrong_number_of_features(fitted):
    model, Xtr, ytr, Xte, yte, exp = fitted
    with pytest.raises(DataValidationError, match="X has 4 features, but .* 5"):
        exp.get_local_influence(Xte[:, :4], yte)


def test_wrong_feature_names():
    import lightgbm as lgb
    from conftest import make_data
    X, y = make_data("binary", n=120, n_num=3)
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1, min_child_samples=5).fit(X, y)
    exp = BoostIn().fit(model, X, y)
    with pytest.raises(DataValidationError, match="feature names"):
        exp.get_local_influence(X.rename(columns={"f0": "zzz"}), y)
    with pytest.raises(DataValidationError, match="another order"):
        exp.get_local_influence(X[["f1", "f0", "f2"]], y)


def test_one_d_and_empty_X(fitted):
    *_, Xte, yte, exp = fitted
    with pytest.raises(DataValidationError, match="2-D"):
        exp.get_local_influence(Xte[0], yte[:1])
    with pytest.raises(DataValidationError, match="0 rows"):
        exp.get_local_influence(Xte[:0], yte[:0])


def test_length_mismatch(fitted):
    model, Xtr, ytr, Xte, yte, exp = fitted
    with pytest.raises(DataValidationError, match="has 3 entries but X has 40 rows"):
        exp.get_local_influence(Xte, yte[:3])
    with pytest.raises(DataValidationError, match="sample_weight has"):
        BoostIn().fit(model, Xtr, ytr, sample_weight=np.ones(3))


def test_nan_or_inf_in_y(fitted):
    model, Xtr, ytr, Xte, yte, exp = fitted
    y = yte.astype(float)
    y[2] = np.nan
    with pytest.raises(DataValidationError, match="NaN or inf"):
        exp.get_local_influence(Xte, y)
    reg, Xr, yr, _, Xre, yre = trained("lightgbm", "regression", nan_frac=0.0)
    yr = yr.copy()
    yr[0] = np.inf
    with pytest.raises(DataValidationError, match="NaN or inf"):
        BoostIn().fit(reg, Xr, yr)


def test_unseen_class(fitted):
    *_, Xte, yte, exp = fitted
    y = yte.copy()
    y[0] = 7
    with pytest.raises(DataValidationError, match="never saw: \\[7\\]"):
        exp.get_local_influence(Xte, y)


def test_unfitted_model_and_explainer(fitted):
    import lightgbm as lgb
    model, Xtr, ytr, Xte, yte, _ = fitted
    with pytest.raises(NotFittedError):
        BoostIn().fit(lgb.LGBMClassifier(), Xtr, ytr)
    exp = BoostIn()
    for call in (lambda: exp.get_local_influence(Xte, yte), exp.get_self_influence,
                 lambda: exp.get_global_influence(Xte, yte),
                 lambda: exp.get_top_influence(Xte, yte, k=3)):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()


def test_unsupported_models(fitted):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    model, Xtr, ytr, Xte, yte, _ = fitted
    with pytest.raises(UnsupportedModelError, match="LogisticRegression.*Supported"):
        parse_model(LogisticRegression().fit(Xtr, ytr))
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(Xtr, ytr)
    with pytest.raises(UnsupportedModelError, match="BoostIn supports boosting"):
        BoostIn().fit(forest, Xtr, ytr)


def test_unsupported_setting():
    import lightgbm as lgb
    model, Xtr, ytr, _, _, _ = trained("lightgbm", "regression", nan_frac=0.0)
    huber = lgb.LGBMRegressor(objective="huber", n_estimators=3, verbose=-1).fit(Xtr, ytr)
    with pytest.raises(UnsupportedModelError, match="huber"):
        BoostIn().fit(huber, Xtr, ytr)


def test_bad_parameters(fitted):
    model, Xtr, ytr, Xte, yte, exp = fitted
    with pytest.raises(DataValidationError, match="variant"):
        BoostIn(variant="fast").fit(model, Xtr, ytr)
    with pytest.raises(DataValidationError, match="n_jobs"):
        BoostIn(n_jobs=0).fit(model, Xtr, ytr)
    with pytest.raises(DataValidationError, match="kind"):
        exp.get_top_influence(Xte, yte, k=3, kind="best")
    with pytest.raises(DataValidationError, match="larger than the number of training rows"):
        exp.get_top_influence(Xte, yte, k=10_000)
    # every error is catchable as the library's base class
    assert issubclass(DataValidationError, TreeInfError)


def test_cli_output_into_a_closed_pipe_is_not_a_traceback():
    """`treeinf demo | head -1`: the reader leaves early; no traceback follows."""
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-m", "treeinf", "demo", "--n-jobs", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=300)
    assert first.startswith(b"treeinf demo:")
    assert "Traceback" not in err and "BrokenPipeError" not in err
